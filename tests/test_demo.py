"Edge cases and a tiny end-to-end run of `semples demo` (semples.demo, nbs/12_demo.ipynb)."
import json, subprocess, sys
import pytest
import torch
from semples.demo import run_pipeline, quick_config, PipelineConfig, DEMO_ROWS
from semples.toyworld import TOY_CLASSES

def test_demo_cli_quick_writes_metrics(tmp_path):
    "The command at a tiny size: every promised key of metrics.json, and the figures."
    out = tmp_path/'demo'
    args = ['demo', '--out', str(out), '--seed', '3', '--quick', '--quiet', '--threads', '1']
    r = subprocess.run([sys.executable, '-c', f'import sys; from semples.cli import main; sys.exit(main({args!r}))'],
                       capture_output=True, text=True, timeout=120)
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

def test_pipeline_rows_subset(tmp_path):
    "Only the rows asked for are trained and scored."
    torch.set_num_threads(1)
    m = run_pipeline(tmp_path, quick_config(seed=4, rows=('cam', 'manual_prompts'), clip_eval_n=0, pseudo_masks=False), progress=False)
    assert set(m['miou']) == {'cam', 'manual_prompts'} and 'prompt_words' not in m and 'clip' not in m

def test_bad_config():
    with pytest.raises(ValueError, match='rows must be'): PipelineConfig(rows=('cam', 'nope'))
    with pytest.raises(ValueError, match="'fresh' or 'stored'"): PipelineConfig(stage0='cached')
