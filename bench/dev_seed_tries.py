"""Training-schedule and loss-weight tries for stages (a) and (c) on the ToyWorld DEVELOPMENT seed 1 (never a test seed).

Why: on the fresh test seeds 21-23, SemPLeS - CAM was 4.5 points, short of issue 6's 5-point claim. These tries ask,
on the development seed only, whether a setting the notebooks had not yet varied (schedule, optimiser, number of
steps, lambda_bg, the mask floor, batch size, a stronger refinement, multi-scale inference) moves the pseudo masks.

    python bench/dev_seed_tries.py --out runs/dev_tries --part 0/2 &   # two processes on a 2-core machine
    python bench/dev_seed_tries.py --out runs/dev_tries --part 1/2
    python bench/dev_seed_tries.py --out runs/dev_tries --collect      # -> results/toyworld_dev_tries.json
    python bench/dev_seed_tries.py --out /tmp/t --quick                # seconds: tiny data and 1-3 steps (tests)

Each part first makes (or resumes) the seed-1 demo run OUT/base (rows cam, matching, semples; the default
settings), then trains every try of its share from the same stage-0 network (and, for stage (c), the same learned
prompts), scoring it at the listed steps exactly as the ablation does (threshold on the tune slice, mIoU on the test
slice of seed 1). Finished (try, step) pairs are skipped on a rerun; records go to OUT/tries.jsonl.
"""
import argparse, json, time
from pathlib import Path
import torch

TRIES = [  # (name, stage, overrides of the default MatchConfig / RefineConfig, steps at which to score)
    ('c: 900 steps, constant lr', 'c', dict(steps=900), (300, 600, 900)),
    ('c: cosine schedule', 'c', dict(schedule='cosine'), (300,)),
    ('c: AdamW wd 0.03 + cosine (paper)', 'c', dict(schedule='cosine', optimizer='adamw', weight_decay=0.03), (300,)),
    ('c: lambda_ref 0.2, 600 steps', 'c', dict(steps=600, lambda_ref=0.2), (300, 600)),
    ('c: lambda_ref 0.5, 600 steps', 'c', dict(steps=600, lambda_ref=0.5), (300, 600)),
    ('a: lambda_bg 1.2', 'a', dict(lambda_bg=1.2), (100, 200, 300)),
    ('a: lambda_bg 4.8', 'a', dict(lambda_bg=4.8), (100, 200, 300)),
    ('a: mask floor 0.05', 'a', dict(mask_eps=0.05), (100, 200, 300)),
    ('a: mask floor 0.2', 'a', dict(mask_eps=0.2), (100, 200, 300)),
    ('a: batch 64', 'a', dict(batch_size=64), (100, 200, 300)),
    ('A/C/E: inference scales 1.0 + 1.5', 'scales', dict(scales=(1.0, 1.5)), (0,)),
    ('A/C/E: stride-2 mask generator (stem features)', 'pipeline', dict(feature_index=0), (0,)),   # a whole new seed-1 run (cam section)
]

def _slug(name): return ''.join(ch if ch.isalnum() else '_' for ch in name).strip('_')

def _done(log):
    if not log.is_file(): return set()
    return {(r['try'], r['step'], r.get('row', '')) for r in map(json.loads, log.read_text().splitlines()) if r}

def _record(log, rec):
    with open(log, 'a') as f: f.write(json.dumps(rec) + '\n')   # one short line per record: a crash loses at most that line
    print(json.dumps(rec), flush=True)

ROWS3 = ('cam', 'matching', 'semples')

def _demo(out:Path, quick:bool, cam:dict|None=None)->dict:
    "The seed-1 demo run (rows A, C, E) into `out`, with the cam section changed by `cam`; resumes."
    from semples.config import check_config
    from semples.demo import demo_config, run_demo
    c = demo_config(seed=1, quick=quick); c['cam'].update(cam or {})
    return run_demo(out, check_config(c), rows=ROWS3, progress=False, clip_eval_n=0, figure_images=0)

def run_part(out:Path, part:int, n_parts:int, quick:bool=False):
    from semples.explore import load_pipeline_run
    from semples.core import machine_load
    from semples.cam import score_net
    from semples.research.results import retrain_and_score
    base = out/'base'
    _demo(base, quick)
    run = load_pipeline_run(base)
    tune, test = run.split('tune'), run.split('test')
    log = out/'tries.jsonl'; done = _done(log)
    for row in ROWS3:
        if ('default', 0, row) not in done:
            r = run.scores[row]
            _record(log, dict(**{'try': 'default', 'step': 0, 'row': row}, miou=r['miou'], threshold=r['threshold'], leak=r['background_leak']))
    for i, (name, stage, kw, steps) in enumerate(TRIES):
        if i % n_parts != part: continue
        if quick and stage not in ('scales', 'pipeline'): kw, steps = {**kw, 'steps': len(steps)}, tuple(range(1, len(steps) + 1))
        if stage == 'pipeline':
            if all((name, 0, row) in done for row in ROWS3): continue
            t0 = time.time(); m = _demo(out/_slug(name), quick, kw)
            for row in ROWS3:
                _record(log, {'try': name, 'step': 0, 'row': row, 'stage': stage, 'overrides': kw, 'miou': m['miou'][row],
                              'threshold': m['threshold'][row], 'leak': m['background_leak'][row], 'seconds': round(time.time() - t0, 1),
                              'machine': machine_load()})
            continue
        if stage == 'scales':
            for row in ROWS3:
                if (name, 0, row) in done: continue
                r = score_net(run.nets[row], tune, test, scales=kw['scales'])
                _record(log, {'try': name, 'step': 0, 'row': row, 'miou': r['miou'], 'threshold': r['threshold'],
                              'leak': r['background_leak'], 'machine': machine_load()})
            continue
        for until in steps:
            if (name, until, '') in done: continue
            t0 = time.time()
            r = retrain_and_score(run, stage, kw, out/_slug(name), until=until)
            _record(log, {'try': name, 'step': until, 'row': '', 'stage': stage, 'overrides': kw, 'miou': r['miou'],
                          'threshold': r['threshold'], 'leak': r['background_leak'], 'seconds': round(time.time() - t0, 1),
                          'machine': machine_load()})

def collect(out:Path, dest:Path):
    from semples.core import save_json, load_json
    log, base = out/'tries.jsonl', out/'base'/'metrics.json'
    if not (log.is_file() and base.is_file()): raise SystemExit(f"nothing to collect in {out}: run the parts first (see --help)")
    recs = [json.loads(l) for l in log.read_text().splitlines() if l]
    w = load_json(base)['config']['data']['world']
    save_json(dict(seed=1, split=f"test slice of the development seed 1 ({w['n_test']} images), threshold chosen on its tune slice ({w['n_tune']})",
                   command='python bench/dev_seed_tries.py --out runs/dev_tries --part i/2 (two processes, 1 thread each)',
                   records=recs), dest)
    print(f"{len(recs)} records -> {dest}")

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', default='runs/dev_tries', help='work folder (the base demo run, one folder per try, tries.jsonl)')
    p.add_argument('--part', default='0/1', help='i/n: run every n-th try starting at i (to use several processes)')
    p.add_argument('--collect', action='store_true', help='write the records to --dest instead of training')
    p.add_argument('--dest', default='results/toyworld_dev_tries.json', help='summary file of --collect')
    p.add_argument('--quick', action='store_true', help='tiny data and 1-3 steps per try: checks that the script runs (numbers meaningless)')
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    if a.collect: return collect(out, Path(a.dest))
    i, n = (int(x) for x in a.part.split('/'))
    if not 0 <= i < n: raise SystemExit(f"--part must be i/n with 0 <= i < n, got {a.part!r}")
    run_part(out, i, n, a.quick)

if __name__ == '__main__': main()
