"bench/local_context.py (the ablation in the local-context ToyWorld): a --quick run trains a CLIP on the local world, runs rows A, C, D and E on it, and collects a summary with per-pixel error bins; a seed without the CLIP is refused with the command that makes it."
import os, subprocess, sys
from semples.core import load_json, project_root
from semples.results import summarize, check_claims, ERROR_BINS

SCRIPT = project_root()/'bench'/'local_context.py'

def _run(*args):
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=600)

def test_quick_local_context(tmp_path):
    out, dest = tmp_path/'lc', tmp_path/'summary.json'
    p = _run('--out', str(out), '--quick', '--dest', str(dest)); assert p.returncode == 0, p.stderr[-2000:]
    res = load_json(dest)
    assert res['clip']['context'] == 'local' and res['summary']['seeds'] == [0]
    run = res['runs'][0]
    assert run['config']['context'] == 'local' and run['config']['clip'] == str(out/'clip')
    assert set(run['miou']) == {'cam', 'matching', 'manual_prompts', 'semples'} and all(0 <= v <= 1 for v in run['miou'].values())
    assert res['summary'] == summarize(res['runs']) and res['claims'] == check_claims(res['summary'])
    for d in res['errors']['0'].values():
        assert sum(d['counts'][b] for b in ERROR_BINS) == round(d['error_rate'] * d['counts']['pixels'])

def test_seed_needs_the_local_clip(tmp_path):
    p = _run('--out', str(tmp_path), '--seed', '5')
    assert p.returncode != 0 and 'run this script with --clip first' in p.stderr
