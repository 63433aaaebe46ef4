"The stored ToyWorld results agree with themselves: each summary, claim list and target list recomputes from the per-seed metrics stored next to it (scene, local and faint worlds), the error bins add up, the gate and judge verdicts follow from their figures, and the development tries hold their defaults."
import json, math
import pytest
from semples.core import load_json, project_root
from semples.research.results import RESULTS_FILE, REPLICATION_FILE, QUICK_FILE, DEV_TRIES_FILE, summarize, check_claims, dev_tries_table
from semples.research.diagnosis import LOCAL_FILE, LOCAL_DEV_FILE, LOCAL_RIM_DEV_FILE, COOC85_DEV_FILE, OBJECTIVE_FILE, ERRORS_FILE, ERROR_BINS

@pytest.mark.parametrize('name', [RESULTS_FILE, REPLICATION_FILE, QUICK_FILE, LOCAL_FILE, LOCAL_DEV_FILE, LOCAL_RIM_DEV_FILE, COOC85_DEV_FILE])
def test_ablation_summary_recomputes(name):
    res = load_json(project_root()/name)
    assert res['summary'] == summarize(res['runs'])
    assert res['claims'] == check_claims(res['summary'])
    assert all(r['miou'].keys() >= {'cam', 'matching', 'manual_prompts', 'semples'} for r in res['runs'])

def test_replication_seeds_are_fresh():
    a, b, c = (set(load_json(project_root()/f)['summary']['seeds']) for f in (RESULTS_FILE, REPLICATION_FILE, LOCAL_FILE))
    assert not a & b and not c & (a | b) and not {0, 1, 2} & (a | b | c)   # never the development seeds 1-2 or the demo's seed 0

def test_quick_runs_are_the_demo_config_on_the_preregistered_seeds():
    "results/toyworld_ablation_quick.json: the demo's config (configs/toyworld.json) on the seeds of the full-length ablation."
    from semples.config import load_config
    q, full, demo = load_json(project_root()/QUICK_FILE), load_json(project_root()/RESULTS_FILE), load_config(project_root()/'configs'/'toyworld.json')
    assert q['summary']['seeds'] == full['summary']['seeds']
    later = dict(select_every=0, patience=0)   # stage fields added after these runs; their defaults are what the runs did (keep the last step)
    for r in q['runs']:
        stored = {k: {**(later if k != 'cam' else {}), **r['config'][k]} for k in ('cam', 'match', 'refine')}
        assert stored == {k: {**demo[k], 'seed': r['seed']} for k in ('cam', 'match', 'refine')}
    assert all(r['config']['stage0_batch'] == 64 and r['config']['match']['steps'] == r['config']['refine']['steps'] == 300 for r in full['runs'])   # = configs/toyworld_full.json

@pytest.mark.parametrize('name', [LOCAL_FILE, LOCAL_DEV_FILE, LOCAL_RIM_DEV_FILE])
def test_local_context_runs_are_local(name):
    res = load_json(project_root()/name)
    assert res['clip']['context'] == 'local' and all(r['config']['context'] == 'local' for r in res['runs'])
    for key in ('errors', 'errors_margin0'):
        assert sorted(res[key]) == sorted(str(s) for s in res['summary']['seeds'])
        for rows in res[key].values():
            for d in rows.values(): assert sum(d['counts'][b] for b in ERROR_BINS) == round(d['error_rate'] * d['counts']['pixels'])
    assert all(d['counts']['outline'] == 0 for rows in res['errors_margin0'].values() for d in rows.values())   # no band, no outline bin

def test_error_bins_add_up():
    e = load_json(project_root()/ERRORS_FILE)
    assert sorted(e['by_seed']) == sorted(str(s) for s in e['seeds'])
    for rows in e['by_seed'].values():
        for d in rows.values():
            assert sum(d['counts'][b] for b in ERROR_BINS) == round(d['error_rate'] * d['counts']['pixels'])
            assert math.isclose(sum(d['share'].values()), 1.0, rel_tol=1e-9)

def test_dev_tries_have_defaults():
    d = load_json(project_root()/DEV_TRIES_FILE)
    assert d['seed'] == 1 and {r['row'] for r in d['records'] if r['try'] == 'default'} == {'cam', 'matching', 'semples'}
    assert len(dev_tries_table(d).splitlines()) == 2 + len(d['records'])

def test_local_dev_tries_are_on_dev_seeds():
    d = load_json(project_root()/LOCAL_DEV_FILE)
    assert d['summary']['seeds'] == [1, 2] and sorted(d['ref_tries']) == ['1', '2']
    assert all(r['lambda_ref'] != 0.05 and r['seed'] == int(s) for s, recs in d['ref_tries'].items() for r in recs)

def test_rim_clip_runs_are_dev_seeds_with_a_rim_clip():
    d = load_json(project_root()/LOCAL_RIM_DEV_FILE)
    assert d['summary']['seeds'] == [1, 2] and d['dataset'] == 'toyworld-local-rim'
    assert len(d['clip']['mix']) == 5 and math.isclose(sum(d['clip']['mix']), 1.0) and d['clip']['rim_max'] >= 1

def test_objective_check_is_consistent():
    d = load_json(project_root()/OBJECTIVE_FILE)
    assert d['runs']
    for name, r in d['runs'].items():
        L = r['losses']; ex = [k for k in L if k.startswith('exact, grown ')]
        assert 'cam' in L and 'matching' in L and ex[0] == 'exact, grown 0 px', name
        areas = [L[k]['area'] for k in ex]; assert areas == sorted(areas), name             # growing a mask never shrinks it
        assert all(v['refine'] >= v['match'] - 1e-9 for v in L.values()), name                # stage (c) adds a non-negative term
        assert all(-1 <= v[s] <= 1 for v in L.values() for s in ('s_fg', 's_bg', 's_ref')), name

def test_cooc85_runs_are_scene_dev_seeds():
    d = load_json(project_root()/COOC85_DEV_FILE)
    assert d['summary']['seeds'] == [1, 2] and d['dataset'] == 'toyworld-scene-cooc85'
    assert d['clip']['context'] == 'scene' and d['clip']['p_cooc'] == 0.85 and all(r['config']['context'] == 'scene' for r in d['runs'])

def test_region_gate_recomputes_on_development_seeds():
    "results/toyworld_region_gate.json: each world's verdict follows from its stored rows, measured on the development seeds only."
    from semples.research.mechanism import GATE_FILE, gate_verdict
    g = load_json(project_root()/GATE_FILE)
    assert set(g['seeds']) <= {1, 2} and g['runs']
    for name, rows in g['runs'].items():
        assert all(r['world'] == name and r['context'] == g['worlds'][name]['context'] for r in rows)
        assert g['verdicts'][name] == json.loads(json.dumps(gate_verdict(rows)))

FIXED_OVER = dict(refine=dict(lambda_ref=2.0), prompts=dict(lambda_p=0.02))   # the first study's settings (every stage 100 steps, whole network)

def _faint_study(name, over):
    from semples.research.mechanism import WORLDS, JUDGES, study_targets
    res = load_json(project_root()/name)
    assert res['summary'] == summarize(res['runs'])
    assert res['targets'] == study_targets(res['summary'], res['runs'][0]['cooccurrence'])
    assert res['world'] == 'faint' and res['over'] == over
    for r in res['runs']:
        w, c = r['config']['data']['world'], r['config']
        assert {k: w[k] for k in WORLDS['faint']} == WORLDS['faint'] and c['clip']['name'].endswith(JUDGES['faint'])
        assert all(c[sec][k] == v for sec, kv in over.items() for k, v in kv.items())
        assert sorted(r['errors']) == sorted(r['miou']) and set(r['prompt_class_cos']) == set(r['prompt_words'])
    return res

def test_faint_study_recomputes_from_its_seeds():
    "results/toyworld_faint_study.json: the summary and every target follow from the stored per-seed rows; fresh seeds, the faint world, its judge, the chosen settings, each stage's kept step."
    from semples.research.mechanism import STUDY_FILE, STUDY_FIXED_FILE, STUDY_OVER
    from semples.pipeline import plateaued
    res = _faint_study(STUDY_FILE, STUDY_OVER)
    others = set().union(*(load_json(project_root()/f)['summary']['seeds'] for f in (RESULTS_FILE, REPLICATION_FILE, LOCAL_FILE, STUDY_FIXED_FILE)))
    assert not set(res['summary']['seeds']) & (others | {0, 1, 2})   # fresh: never a development, demo or earlier study seed
    for r in res['runs']:   # every mask stage kept the tune split's best step, scored every select_every steps
        assert set(r['selection']) == {'fg_only', 'matching', 'manual_prompts', 'semples'}
        e, pat = STUDY_OVER['match']['select_every'], STUDY_OVER['match']['patience']
        for v in r['selection'].values():
            assert v['steps'] == list(range(e, v['stopped'] + 1, e)) and v['stopped'] == v['steps'][-1]
            assert v['tune_miou'][v['steps'].index(v['chosen'])] == max(v['tune_miou'])   # the kept step is the curve's best
            assert plateaued(v['tune_miou'], pat) and not plateaued(v['tune_miou'][:-1], pat)   # stopped at the first plateau

def test_faint_fixed_study_recomputes_from_its_seeds():
    "results/toyworld_faint_study_fixed.json: the first study (seeds 51-53, stages of 100 steps) recomputes too."
    from semples.research.mechanism import STUDY_FIXED_FILE
    res = _faint_study(STUDY_FIXED_FILE, FIXED_OVER)
    assert not set(res['summary']['seeds']) & {0, 1, 2}

def test_faint_cross_recomputes_from_its_seeds():
    "results/toyworld_faint_cross.json: the means follow from the per-seed grids, on the study's seeds and cells."
    from semples.research.mechanism import STUDY_CROSS_FILE, STUDY_CROSS, STUDY_FILE, cross_means
    from semples.research.results import grid_cells
    res = load_json(project_root()/STUDY_CROSS_FILE)
    assert res['mean'] == cross_means(res['runs']) and res['seeds'] == load_json(project_root()/STUDY_FILE)['summary']['seeds']
    assert [r['seed'] for r in res['runs']] == res['seeds']
    assert [[c['n_ctx'], c['lambda_ref']] for c in res['mean']] == [list(c) for c in grid_cells(**STUDY_CROSS)]
    rows = {r['seed']: r['miou']['semples'] for r in load_json(project_root()/STUDY_FILE)['runs']}
    for g in res['runs']:   # the centre cell is the study's SemPLeS row rebuilt from scratch: the same number
        assert math.isclose(next(c['miou'] for c in g['cells'] if [c['n_ctx'], c['lambda_ref']] == list(STUDY_CROSS['center'])), rows[g['seed']], rel_tol=1e-9)

def test_faint_dev_tries_are_on_development_seeds():
    from semples.research.mechanism import STUDY_DEV_FILE
    d = load_json(project_root()/STUDY_DEV_FILE)
    assert d['tries'] and all(t['seed'] in (1, 2) for t in d['tries'])

def test_faint_judge_file_holds_its_bars():
    "results/toyworld_faint_judge.json: the bars follow from the stored figures."
    from semples.research.mechanism import JUDGE_FILE, JUDGE_BARS
    j = load_json(project_root()/JUDGE_FILE)
    assert j['bars'] == {**{k: j[k] >= v for k, v in JUDGE_BARS.items()}, 'probe': j['probe']['d_band'] > j['probe']['d_control']}

def test_gpu_figures_recompute_from_their_rows():
    "The stored H200 figures: ratios follow from the rows (load_gpu_results refuses otherwise), each row's TFLOP/s and peak share from its step time and FLOPs, the kernel kinds add up, every real-mode stage ran."
    from semples.research.bench import load_gpu_results, speed_verdicts, SPEED_TARGETS
    g = load_gpu_results()
    b = g['bench']
    for r in b['rows']:
        assert abs(r['items_per_step'] / (r['step_ms'] / 1000) - r['items_per_s']) < 1e-6 * r['items_per_s']
        assert abs(r['gflop_per_step'] / r['step_ms'] - r['tflops']) < 1e-6 * r['tflops']
        assert abs(r['tflops'] / b['peak_tflops'] - r['peak_fraction']) < 1e-9
    v = speed_verdicts(b)          # as the README says: both stages short of both targets
    assert [x['met'] for x in v.values()] == [False, False] and all(x['ratio'] < SPEED_TARGETS['ratio'] and x['peak_fraction'] < SPEED_TARGETS['peak_fraction'] for x in v.values())
    k = g['profile']['kernels']
    assert abs(sum(k['by_kind'].values()) - k['kernel_ms']) < 0.01
    assert [r['stage'] for r in g['realmode']['rows']][-1] == 'segment' and all(r['peak_gib'] > 0 for r in g['realmode']['rows'])
