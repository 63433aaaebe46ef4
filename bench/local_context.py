"""The ablation in the LOCAL-context ToyWorld (`ToyWorld(context='local')`): the image's background shows only in a patch
around each object, so a CAM that learned "boats go with water" has water right next to the boat to leak into.

Why: in the default (scene) world the error the refinement targets is almost absent (results/toyworld_errors.json:
0.24-0.52% of pixels), so stage (c) cannot show a gain there. This asks whether SemPLeS's stages remove that error
where it is large. Every setting is the default of the scene-world ablation; only the world and the CLIP differ. The
CLIP is the same tiny open_clip model and recipe (`semples.toyclip.pretrain_toyclip`, training seed 1000), trained on
the local world instead (the stored CLIP never saw a patch).

    python bench/local_context.py --out runs/local_context --clip              # the local-world CLIP (~3 min, 2 threads)
    python bench/local_context.py --out runs/local_context --seed 41 &         # one process per seed (~17 min each, 3 side by side)
    python bench/local_context.py --out runs/local_context --collect --seeds 41,42,43   # -> results/toyworld_local_context.json
    python bench/local_context.py --out runs/local_dev --seed 1 --ref-tries 0.5,1,2   # development seed: stage (c) at other lambda_ref
    python bench/local_context.py --out /tmp/lc --quick                        # seconds: tiny CLIP training, quick pipeline (tests)

A second CLIP recipe, `--rim 0.3`, adds "rim views" to pretraining (30% of each batch: one class grown by 1-3 px, captioned
with the class and the background, `semples.toyclip.rim_view`), so the CLIP can see a thin band of background round an
object. It was run on the development seeds only (stage (a) collapsed there, so no fresh seeds were run; research/02_diagnosis):

    python bench/local_context.py --out runs/local_ring_dev --clip --rim 0.3 --threads 1   # ~5 min
    python bench/local_context.py --out runs/local_ring_dev --seed 1           # and 2
    python bench/local_context.py --out runs/local_ring_dev --collect --seeds 1,2 --dest results/toyworld_local_rim_dev.json

A third, `--context scene --p-cooc 0.85`, is the scene world with a CLIP pretrained on ToyWorld's own co-occurrence rate
(0.85) instead of the stored CLIP's 0.95 (development seeds only, research/02_diagnosis):

    python bench/local_context.py --out runs/cooc85_dev --clip --context scene --p-cooc 0.85 --threads 1
    python bench/local_context.py --out runs/cooc85_dev --seed 1               # and 2
    python bench/local_context.py --out runs/cooc85_dev --collect --seeds 1,2 --dest results/toyworld_scene_cooc85_dev.json

Collected without --dest, a rim-CLIP folder goes to results/toyworld_local_rim.json and the results.csv rows
`toyworld-local-rim` (a default-CLIP folder to results/toyworld_local_context.json and `toyworld-local`); other
variants need --dest.
"""
import argparse, json, shutil
from pathlib import Path

ROWS = ('cam', 'matching', 'manual_prompts', 'semples')
from semples.research.diagnosis import LOCAL_FILE, LOCAL_RIM_FILE
MIX = (0.6, 0.1, 0.15, 0.15)   # pretrain_toyclip's default kinds full, empty, fg, bg
MAIN = {'toyworld-local': LOCAL_FILE, 'toyworld-local-rim': LOCAL_RIM_FILE}   # results.csv dataset -> its summary file

def clip_mix(rim:float=0.)->tuple:
    "The CLIP's kinds: the default mix, or (rim > 0) the default scaled by 1 - rim plus rim views at `rim`."
    if not 0 <= rim < 1: raise ValueError(f"--rim must be in [0, 1), got {rim}")
    return tuple(v * (1 - rim) for v in MIX) + (rim,) if rim else MIX

def clip_record(out:Path)->dict:
    "The training record of OUT/clip (`pretrain_toyclip`): context, mix, p_cooc, ..."
    from semples.core import load_json
    return load_json(out/'clip'/'open_clip_config.json')['semples']

def dataset_name(out:Path)->str:
    "The results.csv dataset of OUT's CLIP: toyworld-{context}, + '-rim' (rim views), + '-coocNN' (a p_cooc other than 0.95)."
    r = clip_record(out)
    return f"toyworld-{r['context']}" + ('-rim' if len(r['mix']) == 5 else '') + (f"-cooc{round(100 * r['p_cooc'])}" if r['p_cooc'] != 0.95 else '')

def make_clip(out:Path, quick:bool=False, threads:int=2, rim:float=0., context:str='local', p_cooc:float=0.95)->Path:
    "Train (or reuse) the tiny CLIP on the `context` world: OUT/clip (with rim views when rim > 0; `p_cooc` of its training world)."
    from semples.toyclip import pretrain_toyclip, verify_toyclip
    path = out/'clip'
    if (path/'SHA256SUMS').is_file():
        verify_toyclip(path); r = clip_record(out)
        if (r['context'], len(r['mix']) == 5, r['p_cooc']) != (context, rim > 0, p_cooc):
            raise ValueError(f"{path} was trained with context {r['context']!r}, {'rim views' if len(r['mix']) == 5 else 'no rim views'}, p_cooc {r['p_cooc']}; use another --out")
        return path
    _, rec = pretrain_toyclip(path, steps=2 if quick else 400, batch_size=8 if quick else 128, context=context, mix=clip_mix(rim), rim_max=3,
                              p_cooc=p_cooc, threads=threads, progress=False)
    print(json.dumps(dict(clip=str(path), train_seconds=rec['train_seconds'], final_loss=rec['final_loss'])), flush=True)
    return path

def run_seed(out:Path, seed:int, quick:bool=False)->dict:
    "The demo (rows A, C, D, E) on the world of `seed` that OUT's CLIP was trained on, with that CLIP; resumes."
    import torch
    from semples.config import check_config
    from semples.demo import demo_config, run_demo
    clip = out/'clip'
    if not (clip/'SHA256SUMS').is_file(): raise FileNotFoundError(f"no local-world CLIP at {clip}: run this script with --clip first")
    torch.set_num_threads(1)
    c = demo_config(seed=seed, quick=quick); c['data']['world']['context'] = clip_record(out)['context']; c['clip']['name'] = str(clip)
    m = run_demo(out/f'seed_{seed}', check_config(c), rows=ROWS, progress=False, clip_eval_n=12 if quick else 300)
    print(json.dumps(dict(seed=seed, miou=m['miou'], own_background_fpr=m['background_leak'], prompt_words=m.get('prompt_words'))), flush=True)
    return m

def ref_tries(out:Path, seed:int, lambdas)->list:
    "Retrain stage (c) of a finished seed at other `lambda_ref` (same stage-0 net and prompts), scored like the rows; OUT/seed_S/ref_tries.jsonl."
    from semples.explore import load_pipeline_run
    from semples.research.results import retrain_and_score
    folder = out/f'seed_{seed}'; log = folder/'ref_tries.jsonl'
    run = load_pipeline_run(folder); steps = run.config['refine']['steps']
    recs = [json.loads(l) for l in log.read_text().splitlines() if l] if log.is_file() else []
    for lam in lambdas:
        if any(r['lambda_ref'] == lam for r in recs): continue
        r = retrain_and_score(run, 'c', {'lambda_ref': lam}, folder/f'ref_{lam:g}')
        recs.append(dict(seed=seed, lambda_ref=lam, steps=steps, miou=r['miou'], threshold=r['threshold'], own_background_fpr=r['background_leak']))
        with open(log, 'a') as f: f.write(json.dumps(recs[-1]) + '\n')
        print(json.dumps(recs[-1]), flush=True)
    return recs

def profile(out:Path, seed:int, n:int=64)->dict:
    "`semples.research.diagnosis.objective_profile` of OUT's CLIP on the first `n` test images of `seed` (its world)."
    from semples.clip import load_clip
    from semples.data import toy_splits
    from semples.research.diagnosis import objective_profile
    return objective_profile(load_clip(str(out/'clip')), toy_splits(1, 1, n, seed=seed, context=clip_record(out)['context'])['test'], n=n)

def collect(out:Path, seeds:tuple, dest:Path|None=None, n_profile:int=64)->dict:
    "Summarise the finished seeds (as the scene-world ablation is) plus each row's error breakdown (2-px outline band, and none); one atomic JSON file."
    from semples.core import project_root, save_json, load_json
    from semples.research.results import collect_ablation
    from semples.research.diagnosis import pipeline_errors
    name = dataset_name(out); main = project_root()/MAIN[name] if name in MAIN else None
    if dest is None and main is None: raise ValueError(f"the runs in {out} are {name}, which has no summary file of its own: give --dest")
    dest = Path(dest) if dest else main
    res = collect_ablation(out, seeds, dest=dest, figures=False)
    res['errors'] = {str(s): pipeline_errors(out/f'seed_{s}', rows=ROWS) for s in seeds}
    res['errors_margin0'] = {str(s): pipeline_errors(out/f'seed_{s}', rows=ROWS, margin=0) for s in seeds}   # no outline band: every wrong pixel by kind
    res['objective_profile'] = profile(out, seeds[0], n=n_profile)
    res['objective_profile_images'] = f"the first {n_profile} test images of seed {seeds[0]}"
    logs = {s: out/f'seed_{s}'/'ref_tries.jsonl' for s in seeds}
    res['ref_tries'] = {str(s): [json.loads(l) for l in p.read_text().splitlines() if l] for s, p in logs.items() if p.is_file()}
    res['clip'] = load_json(out/'clip'/'open_clip_config.json')['semples']
    res['clip'].pop('trained_token_ids', None)
    res['world'] = ("ToyWorld(context='local'): the image's background in an oval patch around each object, another background elsewhere"
                    if res['clip']['context'] == 'local' else "ToyWorld(context='scene'): the image's background behind the whole image")
    res['dataset'] = name
    save_json(res, dest)
    if dest == main:   # the stored summary also goes into results.csv (and so the README)
        from semples.research.results import ablation_rows
        from semples.research.results import update_results
        clip = 'its own CLIP' + (', pretrained with rim views (--rim)' if name.endswith('-rim') else '')
        update_results(project_root()/'results'/'results.csv', ablation_rows(res['summary'], dataset=name, source='nbs/research/02_diagnosis', n_test=res['runs'][0]['config']['data']['world']['n_test'],
                       note=f"ToyWorld(context='local') with {clip}; bench/local_context.py; 2 shared CPU cores, 1 thread per seed"))
    fig = out/f'seed_{seeds[0]}'/'masks.png'
    if fig.is_file(): shutil.copyfile(fig, dest.parent/f"{name.replace('-', '_')}_masks_seed{seeds[0]}.png")
    return res

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', default='runs/local_context')
    ap.add_argument('--clip', action='store_true', help='train the local-world CLIP')
    ap.add_argument('--seed', type=int, help='run the demo for this seed')
    ap.add_argument('--collect', action='store_true', help='write the summary of --seeds')
    ap.add_argument('--seeds', default='41,42,43')
    ap.add_argument('--dest', default=None, help=f'summary file (default {LOCAL_FILE}, or {LOCAL_RIM_FILE} for a rim-view CLIP, in the checkout)')
    ap.add_argument('--threads', type=int, default=2, help='with --clip: torch threads for CLIP training (the result depends on it)')
    ap.add_argument('--context', default='local', choices=('local', 'scene'), help="with --clip: the world the CLIP (and so the seeds' pipelines) use")
    ap.add_argument('--p-cooc', type=float, default=0.95, help="with --clip: own-background probability of the CLIP's training world (pretrain_toyclip's default 0.95)")
    ap.add_argument('--rim', type=float, default=0., help='with --clip: share of rim views in CLIP pretraining (0: the default recipe)')
    ap.add_argument('--ref-tries', default=None, help='with --seed: comma-separated lambda_ref values for stage (c) retrained on that seed')
    ap.add_argument('--quick', action='store_true', help='tiny CLIP training and a quick demo on seed 0 (numbers mean nothing)')
    a = ap.parse_args(); out = Path(a.out)
    if a.quick:
        make_clip(out, quick=True, rim=a.rim, context=a.context, p_cooc=a.p_cooc); run_seed(out, 0, quick=True); ref_tries(out, 0, [0.5])
        print(json.dumps(collect(out, (0,), dest=Path(a.dest or out/'summary.json'), n_profile=8)['summary']['miou'], indent=1))
    else:
        if a.clip: make_clip(out, threads=a.threads, rim=a.rim, context=a.context, p_cooc=a.p_cooc)
        if a.seed is not None:
            run_seed(out, a.seed)
            if a.ref_tries: ref_tries(out, a.seed, [float(v) for v in a.ref_tries.split(',')])
        if a.collect: collect(out, tuple(int(s) for s in a.seeds.split(',')), a.dest)
