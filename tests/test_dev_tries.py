"bench/dev_seed_tries.py (the development-seed tries of issue 6): a --quick run trains every try, scores at the listed steps, resumes without retraining, and collects a file that semples.research.results.dev_tries_table reads."
import json, sys
from semples.core import load_json, project_root
from semples.research.results import dev_tries_table

SCRIPT = project_root()/'bench'/'dev_seed_tries.py'

def test_quick_tries_resume_and_collect(tmp_path, bench_script):
    _run = lambda *a: bench_script(SCRIPT.name, *a)
    out = tmp_path/'tries'
    p = _run('--out', str(out), '--quick', '--part', '0/1'); assert p.returncode == 0, p.stderr[-2000:]
    recs = [json.loads(l) for l in (out/'tries.jsonl').read_text().splitlines()]
    sys.path.insert(0, str(SCRIPT.parent)); import dev_seed_tries as d
    assert {r['row'] for r in recs if r['try'] == 'default'} == {'cam', 'matching', 'semples'}
    for name, stage, kw, steps in d.TRIES:   # every try, scored at as many steps as listed (1, 2, ... in quick mode)
        got = sorted(r['step'] for r in recs if r['try'] == name)
        assert got == ([0, 0, 0] if stage in ('scales', 'pipeline') else list(range(1, len(steps) + 1))), (name, got)
    assert all(0 <= r['miou'] <= 1 for r in recs)
    p = _run('--out', str(out), '--quick', '--part', '0/1'); assert p.returncode == 0, p.stderr[-2000:]
    assert len((out/'tries.jsonl').read_text().splitlines()) == len(recs)      # a rerun finds everything done
    dest = tmp_path/'dev.json'
    p = _run('--out', str(out), '--collect', '--dest', str(dest)); assert p.returncode == 0, p.stderr[-2000:]
    res = load_json(dest)
    assert res['records'] == recs and '(16 images)' in res['split']
    assert len(dev_tries_table(res).splitlines()) == 2 + len(recs)

def test_bad_part_and_empty_collect(tmp_path, bench_script):
    _run = lambda *a: bench_script(SCRIPT.name, *a)
    p = _run('--out', str(tmp_path), '--part', '2/2'); assert p.returncode != 0 and '--part must be' in p.stderr
    p = _run('--out', str(tmp_path/'none'), '--collect'); assert p.returncode != 0 and 'nothing to collect' in p.stderr
