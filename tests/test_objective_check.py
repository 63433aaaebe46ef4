"bench/objective_check.py: --quick runs a quick demo and writes, for it, the losses of every trained row's masks and of the exact masks grown by 0-3 px, plus the background-view figure; a run argument without NAME= is refused."
from semples.core import load_json

def test_quick_objective_check(tmp_path, bench_script):
    p = bench_script('objective_check.py', '--quick', '--out', tmp_path); assert p.returncode == 0, p.stderr[-2000:]
    r = load_json(tmp_path/'objective_check.json')['runs']['quick']
    assert r['context'] == 'scene' and r['seed'] == 3 and r['n'] == 8
    assert list(r['losses']) == ['cam', 'matching', 'semples'] + [f'exact, grown {k} px' for k in range(4)]
    assert (tmp_path/'toyworld_bg_views_quick.png').stat().st_size > 10_000 and len(r['figure_s_bg']['exact']) == 4
    assert len(r['background_evidence']) == 4 and all(-1 <= v <= 1 for v in r['background_evidence'].values())

def test_runs_need_names(tmp_path, bench_script):
    p = bench_script('objective_check.py', 'runs/somewhere', '--dest', tmp_path/'x.json')
    assert p.returncode != 0 and 'NAME=FOLDER' in p.stderr
