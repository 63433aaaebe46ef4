"""Does training reach the truth? For finished pipeline runs, the stage-(a) and stage-(c) losses of the masks each trained
network draws and of the exact masks (grown by 0-3 px), on the same 256 training images (`semples.research.diagnosis.objective_at`).
If a trained network's loss is below the exact masks', the objective itself prefers what training found. Also, per run,
`semples.research.diagnosis.background_evidence`: where the class evidence of the exact background view comes from.

    python bench/objective_check.py scene-dev1=runs/dev_tries/base local-dev1=runs/local_dev/seed_1 \\
        local-rim-dev1=runs/local_ring_dev/seed_1 scene-21=runs/ablation/seed_21 local-41=runs/local_context/seed_41 \\
        --figures scene-dev1,local-dev1          # -> results/toyworld_objective_check.json (+ background-view figures)
    python bench/objective_check.py --quick --out /tmp/oc   # seconds: a quick pipeline run, then the same on it (tests)
"""
import argparse
from pathlib import Path

def check(runs:dict, n:int=256, figures=(), fig_dir:Path|None=None)->dict:
    "name -> {folder, context, seed, clip, clip_mix, n, losses}; figures of the named runs go to fig_dir."
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from semples.core import load_json
    from semples.explore import load_pipeline_run
    from semples.pipeline import ROW_LABELS
    from semples.refine import objective_table
    from semples.research.diagnosis import objective_at, plot_bg_views, background_evidence
    out = {}
    for name, folder in runs.items():
        run = load_pipeline_run(folder); clip, w = run.config['clip']['name'], run.config['data']['world']
        rec = load_json(Path(clip)/'open_clip_config.json').get('semples', {}) if Path(str(clip)).is_dir() else {}
        out[name] = dict(folder=str(folder), context=w['context'], seed=w['seed'], clip=str(clip),
                         clip_mix=rec.get('mix'), n=n, losses=objective_at(run, n=n), background_evidence=background_evidence(run, n=n))
        print(f"{name} ({folder}, seed {w['seed']}, {w['context']} world)\n" + objective_table(out[name]['losses'], ROW_LABELS), flush=True)
        print('s(view, class): ' + '; '.join(f'{k} {v:.3f}' for k, v in out[name]['background_evidence'].items()) + '\n', flush=True)
        if name in figures and fig_dir is not None:
            s = plot_bg_views(run, n=4, row='matching')
            plt.gcf().suptitle(f"{name}: what the background term sees (first 4 training images of seed {w['seed']})", fontsize=8)
            plt.tight_layout(); plt.savefig(Path(fig_dir)/f'toyworld_bg_views_{name}.png', dpi=80); plt.close('all')
            out[name]['figure_s_bg'] = s
    return out

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('runs', nargs='*', help='NAME=FOLDER of finished pipeline runs')
    ap.add_argument('--n', type=int, default=256, help='training images')
    ap.add_argument('--figures', default='', help='comma-separated NAMEs whose background views are drawn')
    ap.add_argument('--dest', default=None, help='result file (default results/toyworld_objective_check.json in the checkout)')
    ap.add_argument('--out', default='/tmp/objective_check', help='with --quick: the folder of the quick run')
    ap.add_argument('--quick', action='store_true', help='a quick demo run, checked on 8 images (numbers mean nothing)')
    a = ap.parse_args()
    from semples.core import project_root, save_json
    from semples.research.diagnosis import OBJECTIVE_FILE
    if a.quick:
        import torch
        from semples.demo import run_demo, demo_config
        torch.set_num_threads(1)
        out = Path(a.out); run_demo(out/'run', demo_config(seed=3, quick=True), rows=('cam', 'matching', 'semples'), progress=False, clip_eval_n=0, figure_images=0)
        runs, n, dest, fig_dir = {'quick': out/'run'}, 8, Path(a.dest or out/'objective_check.json'), out
    else:
        if not a.runs: ap.error('give at least one NAME=FOLDER (or --quick)')
        bad = [r for r in a.runs if '=' not in r]
        if bad: ap.error(f'runs must be NAME=FOLDER, got {bad[0]!r}')
        runs = dict(r.split('=', 1) for r in a.runs); n = a.n
        dest, fig_dir = Path(a.dest) if a.dest else project_root()/OBJECTIVE_FILE, (Path(a.dest).parent if a.dest else project_root()/'results')
    figures = tuple(f for f in a.figures.split(',') if f) or (('quick',) if a.quick else ())
    res = check(runs, n=n, figures=figures, fig_dir=fig_dir)
    save_json(dict(runs=res, images=f'the first {n} training images of each run', losses='semples.matching.MatchLoss (stage a) and semples.refine.RefineLoss with the run\'s learned prompts (stage c), the runs\' own settings'), dest)
    print(f'wrote {dest}')
