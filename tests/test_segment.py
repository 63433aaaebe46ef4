"Edge cases of semples.segment: the ToyWorld segmenter at tiny size (shapes, gradients, overfitting, exact resume), the ToyWorld protocol end to end, torchrun equivalence."
import json, os, re, subprocess, sys, textwrap
from pathlib import Path
import numpy as np, pytest, torch
from semples.segment import SegConfig, PseudoMaskDataset, train_segmenter, toy_seg_config, create_segmenter, seg_loss
from semples.research.results import results_markdown, RESULT_FIELDS, update_results
from semples.research.segment_toy import toy_acceptance, toy_result_rows
from semples.loop import shard_indices

SCRIPT = textwrap.dedent('''
    import json, sys, numpy as np, torch
    from pathlib import Path
    from semples.core import save_mask
    from semples.data import ToyWorldDataset
    from semples.segment import SegConfig, PseudoMaskDataset, train_segmenter
    out = Path(sys.argv[1]); ds = ToyWorldDataset(n=16, start=0, split='train', seed=5)
    torch.set_num_threads(1)
    cfg = SegConfig(steps=2, batch_size=8, lr=0.05, log_every=1, ckpt_every=0, seed=1)
    _, recs = train_segmenter(cfg, PseudoMaskDataset(ds, out/'pseudo'), None)
    import os
    if os.environ.get('RANK', '0') == '0': (out/sys.argv[2]).write_text(json.dumps([r['loss'] for r in recs]))
    import torch.distributed as dist
    if dist.is_initialized(): dist.destroy_process_group()   # as `semples segment` does: exiting with a live gloo group can abort
''')

def _masks(out):
    from semples.core import save_mask
    from semples.data import ToyWorldDataset
    ds = ToyWorldDataset(n=16, start=0, split='train', seed=5)
    for i in range(len(ds)): save_mask(ds.read_mask(ds.ids[i]), out/'pseudo'/f'{ds.ids[i]}.png')

def test_torchrun_matches_single_process(tmp_path):
    _masks(tmp_path); (tmp_path/'s.py').write_text(SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS='1')
    subprocess.run([sys.executable, str(tmp_path/'s.py'), str(tmp_path), 'one.json'], check=True, env=env, timeout=120)
    subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_port', '29517',
                    str(tmp_path/'s.py'), str(tmp_path), 'two.json'], check=True, env=env, timeout=180)
    one, two = (json.loads((tmp_path/f).read_text()) for f in ('one.json', 'two.json'))
    print('single', one, 'ddp', two)
    assert len(one) == len(two) == 2
    np.testing.assert_allclose(one, two, rtol=1e-4)

def test_missing_pseudo_mask(tmp_path):
    from semples.data import ToyWorldDataset
    ds = ToyWorldDataset(n=2, start=0, split='train', seed=5); (tmp_path/'p').mkdir()
    with pytest.raises(FileNotFoundError, match='no pseudo mask'): PseudoMaskDataset(ds, tmp_path/'p')

def test_shard_covers_batch():
    idx = np.arange(12)
    assert sorted(np.concatenate([shard_indices(idx, r, 3) for r in range(3)]).tolist()) == idx.tolist()

def test_results_table_of_repo_csv():
    p = Path(__file__).parents[1]/'results'/'results.csv'
    md = results_markdown(p)
    assert md.count('\n') >= 2 and md.splitlines()[0].startswith('| dataset')

def test_realmode_bench_runs_on_cpu_tiny(tmp_path):
    "The GPU acceptance script runs every stage end to end (tiny CLIP, toy nets, 1 step), the objective check included, and reports each."
    env = dict(os.environ, OMP_NUM_THREADS='1')
    r = subprocess.run([sys.executable, str(Path(__file__).parents[1]/'bench'/'realmode_gpu.py'), '--out', str(tmp_path),
                        '--n', '32', '--size', '64', '--steps', '1', '--batch', '4', '--tiny'], env=env, timeout=300, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = json.loads((tmp_path/'bench.json').read_text())
    assert [x['stage'] for x in rows] == ['cam (stage 0)', 'match (a)', 'prompts (b)', 'refine (c)', 'objective check', 'pseudo', 'segment']
    obj = json.loads((tmp_path/'objective.json').read_text())
    assert list(obj) == ['cam', 'matching', 'semples'] + [f'exact, grown {r} px' for r in range(4)] and all(v['refine'] >= v['match'] - 1e-6 for v in obj.values())
    assert all(x['images_per_s'] > 0 for x in rows)
    assert (tmp_path/'segment'/'metrics.jsonl').exists() and len(list((tmp_path/'pseudo').glob('*.png'))) == 32

def test_segment_cli_with_shipped_toy_config(tmp_path, capsys):
    "`semples segment --config C --out OUT` with configs/toyworld.json (world and steps shrunk): OUT/segment is a full run folder."
    from semples.cli import main
    from semples.core import save_mask
    from semples.pipeline import open_dataset
    cfg = json.loads((Path(__file__).parents[1]/'configs'/'toyworld.json').read_text())
    cfg['data']['world'].update(n_train=16, n_tune=4, n_test=8)
    cfg['segment'].update(steps=3, batch_size=4, ckpt_every=2, device='cpu')
    (tmp_path/'c.json').write_text(json.dumps(cfg))
    from semples.config import load_config
    ds = open_dataset(load_config(tmp_path/'c.json'), 'train')
    for i in ds.ids: save_mask(ds.read_mask(i), tmp_path/'run'/'pseudo'/'masks'/f'{i}.png')   # stand-in pseudo masks: the ground truth
    assert main(['segment', '--config', str(tmp_path/'c.json'), '--out', str(tmp_path/'run'), '--pred_dir', str(tmp_path/'pred'), '--quiet']) == 0
    assert {'config.json', 'metrics.jsonl', 'env.json', 'checkpoint.pt', 'summary.json'} <= {p.name for p in (tmp_path/'run'/'segment').iterdir()}
    assert len(list((tmp_path/'pred').glob('*.png'))) == 8
    recs = [json.loads(l) for l in (tmp_path/'run'/'segment'/'metrics.jsonl').read_text().splitlines()]
    assert any('miou' in r for r in recs)
    cfg['segment']['colour'] = 1; (tmp_path/'d.json').write_text(json.dumps(cfg))
    capsys.readouterr()
    assert main(['segment', '--config', str(tmp_path/'d.json'), '--out', str(tmp_path/'run2')]) == 1
    assert "unknown segment field(s) ['colour']" in capsys.readouterr().err


TINY = dict(head_width=16, skip_width=8, steps=6, batch_size=4, warmup=1, ckpt_every=3, log_every=1)

def _pseudo_from_gt(tmp_path, n=8, seed=5):
    from semples.core import save_mask
    from semples.data import ToyWorldDataset
    ds = ToyWorldDataset(n=n, start=0, split='train', seed=seed)
    for i in ds.ids: save_mask(ds.read_mask(i), tmp_path/'pseudo'/f'{i}.png')
    return PseudoMaskDataset(ds, tmp_path/'pseudo')

@pytest.mark.parametrize('norm', ['bn', 'gn'])
def test_toy_segmenter_shapes_and_gradients(norm):
    torch.manual_seed(0)
    net = create_segmenter(toy_seg_config(norm=norm, head_width=16, skip_width=8))
    x, y = torch.rand(3, 3, 64, 64), torch.randint(0, 7, (3, 64, 64))
    y[0, :8] = 255                                              # ignored pixels are allowed
    assert net(x)['out'].shape == (3, 7, 16, 16)
    loss = seg_loss(net, x, y, amp=False); loss.backward()
    assert torch.isfinite(loss) and abs(loss.item() - np.log(7)) < 0.5   # an untrained 7-class head: cross-entropy near log 7
    grads = {n: p.grad for n, p in net.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    zero = [n for n, g in grads.items() if g.abs().sum() == 0]
    # timm starts each residual branch at zero (last BatchNorm scale 0): only the layers before it get no gradient yet
    assert all(re.match(r'backbone\.layer\d\.0\.(conv1|bn1|conv2)\.', n) for n in zero), zero
    assert all(grads[n].abs().sum() > 0 for n in grads if n.startswith(('aspp', 'skip', 'classifier', 'backbone.conv1')))

def test_toy_segmenter_overfits_tiny_set(tmp_path):
    torch.set_num_threads(1)
    ds = _pseudo_from_gt(tmp_path)
    cfg = toy_seg_config(**{**TINY, 'steps': 30, 'batch_size': 8, 'lr': 1e-2, 'scale_jitter': (1.0, 1.0), 'hflip': 0.0, 'ckpt_every': 0})
    _, recs = train_segmenter(cfg, ds, None)
    losses = [r['loss'] for r in recs]
    print('losses', [round(l, 3) for l in losses[::5]])
    assert np.mean(losses[-3:]) < 0.5 * losses[0]             # measured: 2.17 -> 0.52

def test_toy_segmenter_resume_is_exact(tmp_path):
    torch.set_num_threads(1)
    ds = _pseudo_from_gt(tmp_path)
    cfg = toy_seg_config(**TINY)                                # flips and scale jitter on
    a, ra = train_segmenter(cfg, ds, tmp_path/'a')
    train_segmenter(cfg, ds, tmp_path/'b', until=3)
    assert torch.load(tmp_path/'b'/'checkpoint.pt', weights_only=True)['step'] == 3
    b, rb = train_segmenter(cfg, ds, tmp_path/'b')
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()): torch.testing.assert_close(v, w, msg=k)
    assert [r['loss'] for r in ra][3:] == pytest.approx([r['loss'] for r in rb], rel=1e-5)

def test_seg_config_rejects_bad_values():
    for kw, msg in [(dict(schedule='step'), 'schedule'), (dict(optimizer='adam'), 'optimizer'), (dict(scale_jitter=(0, 1)), 'scale_jitter'),
                    (dict(warmup=-1), 'warmup')]:
        with pytest.raises(ValueError, match=msg): toy_seg_config(**kw)

def test_toy_acceptance_tiny_from_scratch(tmp_path):
    "The whole ToyWorld protocol at tiny size: SemPLeS pipeline -> train pseudo masks -> segmenter -> held-out test; the pseudo masks are reused."
    from semples.demo import demo_config
    torch.set_num_threads(1)
    pipe = demo_config(seed=2, quick=True); w = pipe['data']['world']
    r = toy_acceptance(tmp_path, source=None, cfg=pipe, seg=toy_seg_config(**TINY), n_val=8, figures=False)
    assert (tmp_path/'pipeline'/'refine'/'checkpoint.pt').is_file()
    assert len(list((tmp_path/'pseudo').glob('*.png'))) == w['n_train']
    assert (r['n_fit'], r['n_val'], r['n_test']) == (w['n_train'] - 8, 8, w['n_test'])
    for k in ('pseudo_miou_train', 'pseudo_miou_fit', 'cam_miou_test', 'seg_miou_val_vs_pseudo', 'seg_miou_test'): assert 0 <= r[k] <= 1, k
    assert json.loads((tmp_path/'segment.json').read_text())['seg_miou_test'] == pytest.approx(r['seg_miou_test'])
    stamp = (tmp_path/'pseudo'/'pseudo_config.json').stat().st_mtime_ns
    r2 = toy_acceptance(tmp_path, source=tmp_path/'pipeline', seg=toy_seg_config(**{**TINY, 'steps': 2}), n_val=8, figures=False, run_name='other')
    assert (tmp_path/'pseudo'/'pseudo_config.json').stat().st_mtime_ns == stamp      # same source and threshold: masks reused
    assert r2['pseudo_miou_train'] == pytest.approx(r['pseudo_miou_train']) and (tmp_path/'other'/'model.pt').is_file()
    with pytest.raises(FileNotFoundError, match='semples demo'): toy_acceptance(tmp_path/'x', source=tmp_path/'nothing')
    with pytest.raises(ValueError, match='row must be'): toy_acceptance(tmp_path/'x', source=tmp_path/'pipeline', row='stage_z')

def test_results_rows_keep_other_datasets(tmp_path):
    p = tmp_path/'r.csv'; p.write_text((Path(__file__).parents[1]/'results'/'results.csv').read_text())
    before = [l for l in p.read_text().splitlines() if not l.startswith('toyworld')]
    acc = dict(seed=0, row='semples', threshold=0.65, source='runs/demo', n_fit=3600, n_val=400, n_test=1000, pseudo_miou_train=0.7,
               pseudo_miou_fit=0.7, cam_miou_test=0.7, seg_miou_val_vs_pseudo=0.8, seg_miou_test=0.66, timings_s=dict(train=1, total=2),
               machine=dict(cpu_count=2, torch_threads=1, load_avg_15min=1.0), seg=dict(vars(toy_seg_config())))
    update_results(p, toy_result_rows(acc, 'cmd'), drop=lambda r: r['dataset'] == 'toyworld' and r['stage'].startswith('segmentation'))
    after = p.read_text().splitlines()
    assert [l for l in after if not l.startswith('toyworld')] == before
    assert sum(l.startswith('toyworld') and 'segmentation' in l for l in after) == 1
