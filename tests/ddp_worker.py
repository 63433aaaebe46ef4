"""Worker of tests/test_ddp.py: a few steps of ToyWorld stage 0 (and of stage a) on CPU.

Launched as `python -m torch.distributed.run --standalone --nproc_per_node 2 tests/ddp_worker.py OUT [--match]` it trains
under DDP (gloo), also under the pipeline's best-step rule; the test also imports it and calls the same functions in one process. Rank 0 writes OUT/result.json.
"""
import argparse, json, os, sys
from pathlib import Path
import torch

torch.set_num_threads(1)

def toy_data(n:int=24, size:int=32, seed:int=0):
    from semples.data import toy_splits
    return toy_splits(n_train=n, n_tune=1, n_test=1, size=size, seed=seed)['train']

def stage0(out, steps:int=2, until=None, batch_size:int=8, num_workers:int=0):
    "Stage 0 for `steps` steps (stop at `until`), logging every step; returns (network, records)."
    from semples.cam import train_stage0
    from semples.loop import LoopConfig
    lc = LoopConfig(steps=steps, batch_size=batch_size, log_every=1, device='cpu', num_workers=num_workers)
    return train_stage0(toy_data(), loop_cfg=lc, out=out, until=until, progress=False)

class _AsDtype:
    "A dataset whose images come in another float type."
    def __init__(self, ds, dtype): self.ds, self.dtype = ds, dtype
    def __len__(self): return len(self.ds)
    def __getitem__(self, i): return {**self.ds[i], 'image': self.ds[i]['image'].to(self.dtype)}

def stage0_f64(out, steps:int=2):
    "Stage 0 in float64 through `train_loop`: one process and DDP must then agree to rounding (1e-13), not just closely."
    from semples.cam import create_cam_net, stage0_loss
    from semples.loop import LoopConfig, train_loop
    from semples.core import seed_everything
    seed_everything(0); net = create_cam_net().double()
    lc = LoopConfig(steps=steps, batch_size=8, log_every=1, device='cpu')
    return net, train_loop(net, stage0_loss, _AsDtype(toy_data(), torch.float64), lc, out=out, progress=False)

def match(out, weighted:bool, steps:int=2):
    "Stage a (MatchLoss) from the stored stage-0 network; `weighted=False` drops the pair count MatchLoss returns as its weight."
    from semples.cam import load_toy_cam
    from semples.clip import load_clip
    from semples.matching import MatchConfig, MatchLoss, train_mask_generator
    ds = toy_data(n=24, size=64, seed=1)
    cfg = MatchConfig(steps=steps, batch_size=8, log_every=1, device='cpu')
    lf = MatchLoss(load_clip('toyclip'), ds.classes, cfg)
    fn = lf if weighted else (lambda m, b: lf(m, b)[:2])   # MatchLoss returns its pair count as the weight; [:2] drops it
    return train_mask_generator(load_toy_cam(), fn, ds, cfg, out=out, progress=False)

def picked(out, steps:int=8):
    "Stage 0 under the pipeline's best-step rule, scored by a fixed sequence (0.4 at the start, 0.5, 0.7, 0.6, ...): keeps step 4, stops at 6."
    from types import SimpleNamespace
    from semples.pipeline import _train_selected
    scores = iter([0.4, 0.5, 0.7, 0.6, 0.55])                        # the same on every rank: the ranks must agree on when to stop
    mc = SimpleNamespace(steps=steps, select_every=2, patience=1)
    return _train_selected(lambda until=None: stage0(out, steps=steps, until=until), mc, Path(out), lambda net: next(scores))

def pair_counts(batch_size:int=8, world:int=2, step:int=0):
    "Positive pairs per process in the first stage-a batch (shows why the weighting matters)."
    from semples.loop import LoopConfig, StepBatchSampler
    ds = toy_data(n=24, size=64, seed=1)
    s = StepBatchSampler(len(ds), LoopConfig(batch_size=batch_size), rank=0, world=1)
    idx = [i for i, _ in s.batch(step)]
    return [int(sum(float((ds[idx[j]]['labels'] > 0).sum()) for j in range(r, batch_size, world))) for r in range(world)]

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('out'); ap.add_argument('--match', action='store_true')
    a = ap.parse_args()
    out = Path(a.out); res = {}
    _, recs = stage0(out/'full', steps=3)                       # uninterrupted, 3 steps
    res['full'] = [r['loss'] for r in recs]
    stage0(out/'cut', steps=3, until=1)                         # a pause after step 1 (also kept as 'half' below) ...
    if int(os.environ.get('RANK', '0')) == 0:
        import shutil; shutil.copytree(out/'cut', out/'half')
    torch.distributed.barrier()
    _, recs = stage0(out/'cut', steps=3)                        # ... then resumed to 3
    res['cut'] = [r['loss'] for r in recs]
    _, recs = stage0_f64(out/'f64')
    res['f64'] = [r['loss'] for r in recs]
    _, res['picked'] = picked(out/'picked')
    torch.distributed.barrier()                                 # rank 0's last copy is on disk before anyone reads it
    try: stage0(None, steps=1, batch_size=7)
    except ValueError as e: res['odd_batch_error'] = str(e)
    if a.match:
        for w in (False, True):
            _, recs = match(out/f'match_{int(w)}', w)
            res[f'match_{int(w)}'] = [r['loss'] for r in recs]
    if int(os.environ.get('RANK', '0')) == 0:
        res['world_size'] = int(os.environ['WORLD_SIZE'])
        (out/'result.json').write_text(json.dumps(res))
    torch.distributed.destroy_process_group()

if __name__ == '__main__':
    sys.exit(main())
