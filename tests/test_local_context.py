"bench/local_context.py (the ablation in the local-context ToyWorld): a --quick run trains a CLIP on the local world (the default recipe, and with rim views) or on the scene world at another p_cooc, runs rows A, C, D and E on it, retrains stage (c) at another lambda_ref, and collects a summary with per-pixel error bins and the objective profile; a seed without the CLIP is refused with the command that makes it, and a rim share outside [0, 1) is refused."
from semples.core import load_json
from semples.research.results import summarize, check_claims
from semples.research.diagnosis import ERROR_BINS

import pytest

@pytest.mark.parametrize('rim,context,p_cooc,name', [(0., 'local', 0.95, 'toyworld-local'), (0.3, 'local', 0.95, 'toyworld-local-rim'),
                                                    (0., 'scene', 0.85, 'toyworld-scene-cooc85')])
def test_quick_local_context(tmp_path, bench_script, rim, context, p_cooc, name):
    out, dest = tmp_path/'lc', tmp_path/'summary.json'
    p = bench_script('local_context.py', '--out', out, '--quick', '--dest', dest, '--rim', rim, '--context', context, '--p-cooc', p_cooc)
    assert p.returncode == 0, p.stderr[-2000:]
    res = load_json(dest)
    assert res['clip']['context'] == context and res['clip']['p_cooc'] == p_cooc and res['summary']['seeds'] == [0]
    assert len(res['clip']['mix']) == (5 if rim else 4) and res['dataset'] == name
    if rim: assert res['clip']['mix'][-1] == rim and res['clip']['rim_max'] == 3
    run = res['runs'][0]
    assert run['config']['data']['world']['context'] == context and run['config']['clip']['name'] == str(out/'clip')
    assert set(run['miou']) == {'cam', 'matching', 'manual_prompts', 'semples'} and all(0 <= v <= 1 for v in run['miou'].values())
    assert res['summary'] == summarize(res['runs']) and res['claims'] == check_claims(res['summary'])
    assert [r['lambda_ref'] for r in res['ref_tries']['0']] == [0.5] and 0 <= res['ref_tries']['0'][0]['miou'] <= 1
    prof = res['objective_profile']
    assert sorted(int(r) for r in prof) == [-2, -1, 0, 1, 2, 3, 4, 6] and prof['-1']['area'] < prof['0']['area'] < prof['2']['area']
    for d in res['errors']['0'].values():
        assert sum(d['counts'][b] for b in ERROR_BINS) == round(d['error_rate'] * d['counts']['pixels'])

def test_seed_needs_the_local_clip(tmp_path, bench_script):
    p = bench_script('local_context.py', '--out', tmp_path, '--seed', 5)
    assert p.returncode != 0 and 'run this script with --clip first' in p.stderr

def test_rim_share_is_checked(tmp_path, bench_script):
    p = bench_script('local_context.py', '--out', tmp_path, '--clip', '--rim', 1.5)
    assert p.returncode != 0 and '--rim must be in [0, 1)' in p.stderr
