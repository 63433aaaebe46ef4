"Edge cases of semples.segment: torchrun (gloo, 2 CPU processes) gives the same losses as one process."
import json, os, subprocess, sys, textwrap
from pathlib import Path
import numpy as np, pytest, torch
from semples.segment import SegConfig, PseudoMaskDataset, train_segmenter, results_markdown, RESULT_FIELDS, shard

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
    assert sorted(np.concatenate([shard(idx, r, 3) for r in range(3)]).tolist()) == idx.tolist()

def test_results_table_of_repo_csv():
    p = Path(__file__).parents[1]/'results'/'results.csv'
    md = results_markdown(p)
    assert md.count('\n') >= 2 and md.splitlines()[0].startswith('| dataset')

def test_realmode_bench_runs_on_cpu_tiny(tmp_path):
    "The GPU acceptance script runs every stage end to end (tiny CLIP, toy nets, 1 step) and reports each."
    env = dict(os.environ, OMP_NUM_THREADS='1')
    r = subprocess.run([sys.executable, str(Path(__file__).parents[1]/'bench'/'realmode_gpu.py'), '--out', str(tmp_path),
                        '--n', '32', '--size', '64', '--steps', '1', '--batch', '4', '--tiny'], env=env, timeout=300, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = json.loads((tmp_path/'bench.json').read_text())
    assert [x['stage'] for x in rows] == ['cam (stage 0)', 'match (a)', 'prompts (b)', 'refine (c)', 'pseudo', 'segment']
    assert all(x['images_per_s'] > 0 for x in rows)
    assert (tmp_path/'segment'/'metrics.jsonl').exists() and len(list((tmp_path/'pseudo').glob('*.png'))) == 32

def test_segment_cli_with_shipped_toy_config(tmp_path):
    "`semples segment CONFIG OUT` with configs/toyworld_segment.json (paths and steps shrunk) writes a full run folder."
    from semples.cli import main
    from semples.core import save_mask
    from semples.toyworld import export_voc
    from semples.data import VOCSegDataset
    voc = export_voc(tmp_path/'toy', {'train': 16, 'val': 8}, size=64, seed=7)
    ds = VOCSegDataset(voc, 'train', cache_dir=False)
    for i in ds.ids: save_mask(ds.read_mask(i), tmp_path/'pseudo'/f'{i}.png')
    cfg = json.loads((Path(__file__).parents[1]/'configs'/'toyworld_segment.json').read_text())
    cfg['data'].update(root=str(voc), pseudo_dir=str(tmp_path/'pseudo'))
    cfg['segment'].update(steps=3, batch_size=4, ckpt_every=2, device='cpu')
    (tmp_path/'c.json').write_text(json.dumps(cfg))
    assert main(['segment', str(tmp_path/'c.json'), str(tmp_path/'run'), '--pred_dir', str(tmp_path/'pred')]) == 0
    assert {'config.json', 'metrics.jsonl', 'env.json', 'checkpoint.pt'} <= {p.name for p in (tmp_path/'run').iterdir()}
    assert len(list((tmp_path/'pred').glob('*.png'))) == 8
    recs = [json.loads(l) for l in (tmp_path/'run'/'metrics.jsonl').read_text().splitlines()]
    assert any('miou' in r for r in recs)
    cfg['segment']['colour'] = 1; (tmp_path/'d.json').write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match='unknown segment fields'): main(['segment', str(tmp_path/'d.json'), str(tmp_path/'run2')])
