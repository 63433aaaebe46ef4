"Edge cases and a tiny end-to-end run of `semples demo` (semples.demo, nbs/14_demo.ipynb), and the demo as the stage commands."
import json, os, signal, subprocess, sys, time
import pytest
import torch
from semples.cli import main
from semples.core import load_json, save_json
from semples.demo import run_demo, demo_config, demo_steps, DEMO_ROWS
from semples.toyworld import TOY_CLASSES

def _cli(*args, timeout=300):
    return subprocess.run([sys.executable, '-c', f'import sys; from semples.cli import main; sys.exit(main({list(map(str, args))!r}))'],
                          capture_output=True, text=True, timeout=timeout)

def test_demo_cli_quick_writes_metrics(tmp_path):
    "The command at a tiny size: every promised key of metrics.json, and the figures."
    out = tmp_path/'demo'
    r = _cli('demo', '--out', out, '--seed', 3, '--quick', '--quiet', '--threads', 1)
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads((out/'metrics.json').read_text())
    assert m['complete'] is True and m['seed'] == 3 and m['elapsed_s'] > 0
    assert {'object_acc', 'background_acc'} <= set(m['clip'])
    assert set(m['miou']) == {'cam', 'matching', 'manual_prompts', 'semples'}
    assert {'cam', 'semples'} <= set(m['background_leak'])
    assert set(m['prompt_words']) == set(TOY_CLASSES) and all(len(w) == 3 for w in m['prompt_words'].values())
    assert m['cooccurrence']['boat'] == 'water'
    assert all(0 <= v <= 1 for v in m['miou'].values())
    assert {p.name for p in out.glob('*.png')} == {'masks.png', 'prompts.png', 'scores.png'}
    assert {'cam', 'match', 'prompts', 'refine', 'refine_manual', 'pseudo', 'score'} <= {p.name for p in out.iterdir() if p.is_dir()}

def test_demo_rows_subset(tmp_path):
    "Only the rows asked for are trained and scored."
    torch.set_num_threads(1)
    m = run_demo(tmp_path, demo_config(seed=4, quick=True), rows=('cam', 'manual_prompts'), progress=False, clip_eval_n=0)
    assert set(m['miou']) == {'cam', 'manual_prompts'} and 'prompt_words' not in m and 'clip' not in m
    assert not (tmp_path/'prompts').exists() and not (tmp_path/'pseudo').exists()

def test_bad_rows():
    with pytest.raises(ValueError, match='rows must be'): demo_steps(('cam', 'nope'))
    with pytest.raises(ValueError, match='rows must be'): demo_steps(())

def test_demo_equals_command_chain(tmp_path):
    "The demo and the stage commands on the same config and seed write the same mIoU and leak values."
    torch.set_num_threads(1)
    cfg = demo_config(seed=11, quick=True); save_json(cfg, tmp_path/'c.json')
    md = run_demo(tmp_path/'demo', cfg, progress=False, clip_eval_n=0, figure_images=0)
    for stage in ('cam', 'match', 'prompts', 'refine'): assert main([stage, '--config', str(tmp_path/'c.json'), '--out', str(tmp_path/'chain'), '--quiet']) == 0
    assert main(['refine', '--config', str(tmp_path/'c.json'), '--out', str(tmp_path/'chain'), '--row', 'manual_prompts', '--quiet']) == 0
    assert main(['score', '--config', str(tmp_path/'c.json'), '--out', str(tmp_path/'chain'), '--quiet']) == 0
    ch = load_json(tmp_path/'chain'/'score'/'summary.json')['rows']
    assert {r: (v['miou'], v['background_leak']) for r, v in ch.items()} == {r: (md['miou'][r], md['background_leak'][r]) for r in md['miou']}

def test_demo_config_file_and_seed(tmp_path):
    "--config starts from a file; the demo's --seed sets every stage's seed over the file's."
    cfg = load_json(os.path.join(os.path.dirname(__file__), '..', 'configs', 'toyworld.json'))
    cfg['match']['lambda_bg'] = 1.5; save_json(cfg, tmp_path/'c.json')
    c = demo_config(seed=9, config=tmp_path/'c.json')
    assert c['match']['lambda_bg'] == 1.5 and (c['cam']['seed'], c['refine']['seed'], c['data']['world']['seed']) == (9, 9, 9)

def test_demo_killed_during_stage_a_resumes_to_the_same_metrics(tmp_path):
    "kill -9 during stage (a), rerun the same command: it resumes from the checkpoint and ends with the uninterrupted run's metrics."
    cfg = demo_config(seed=2, quick=True)
    cfg['match'].update(steps=40, ckpt_every=5, batch_size=8); save_json(cfg, tmp_path/'c.json')
    args = ['demo', '--out', tmp_path/'killed', '--config', tmp_path/'c.json', '--seed', 2, '--quiet', '--threads', 1]
    p = subprocess.Popen([sys.executable, '-c', f'import sys; from semples.cli import main; sys.exit(main({list(map(str, args))!r}))'])
    ck = tmp_path/'killed'/'match'/'checkpoint.pt'
    for _ in range(600):
        if ck.is_file() or p.poll() is not None: break
        time.sleep(0.1)
    p.send_signal(signal.SIGKILL); p.wait()
    assert ck.is_file() and not (tmp_path/'killed'/'match'/'summary.json').is_file(), 'the kill must land inside stage (a)'
    assert _cli(*args).returncode == 0
    assert _cli('demo', '--out', tmp_path/'whole', '--config', tmp_path/'c.json', '--seed', 2, '--quiet', '--threads', 1).returncode == 0
    a, b = (load_json(tmp_path/d/'metrics.json') for d in ('killed', 'whole'))
    for k in ('miou', 'threshold', 'background_leak', 'leak_other', 'prompt_words'): assert a[k] == b[k], k
