"""Where does the fast stage-(a) step spend its time on the GPU, and do two candidate fixes help? (issue 22, step 3)

Run ON THE GPU MACHINE after bench/gpu_session.sh's wheel install (same PYTHONPATH):
    python3 bench/gpu_profile.py --out $OUT/profile.json --budget 330
Rows, each timed like `semples bench` (224 px, batch 64, 5 warm-up + 20 timed steps, CUDA events):
  default         the fast step as `semples bench --compile` times it (CLIP tower and mask generator compiled)
  + profile       3 steps under torch.profiler: kernel time per step against wall time (idle GPU = host overhead),
                  and the kernels that take the time, by kind (matrix products, attention, fused Triton, other)
  max-autotune    the CLIP tower compiled with mode 'max-autotune-no-cudagraphs' (autotuned matrix products)
Tried in an earlier run and dropped: 'reduce-overhead' (CUDA graphs: 1,353 vs 1,362 images/s, so the step is not
launch-bound) and the whole loss in one compile region (dynamo refuses the nested compiled mask generator).
A row starts only if --budget seconds are not yet spent, so the run ends inside the device call.
CPU smoke: python bench/gpu_profile.py --tiny --out /tmp/p.json
"""
import argparse, json, tempfile, time
from pathlib import Path
import torch

def _kind(name:str)->str:
    n = name.lower()
    if any(k in n for k in ('gemm', 'cutlass', 'nvjet', 'xmma', 'cublas', 'conv')): return 'matrix products'
    if any(k in n for k in ('flash', 'fmha', 'attention', 'sdpa')): return 'attention'
    if 'triton' in n: return 'fused (Triton)'
    return 'other'

def kernel_profile(step, dev, n:int=3, top:int=12)->dict:
    "GPU kernel time per step (each kernel counted once) against wall time, by kind, and the kernels that take the time."
    from torch.profiler import profile, ProfilerActivity
    from torch.autograd import DeviceType
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == 'cuda' else [])
    if dev.type == 'cuda': torch.cuda.synchronize(dev)
    t = time.perf_counter()
    with profile(activities=acts) as prof:
        for i in range(n): step(i)
        if dev.type == 'cuda': torch.cuda.synchronize(dev)
    wall = (time.perf_counter() - t) * 1000 / n
    per = {}
    for e in prof.events():
        if e.device_type == DeviceType.CUDA: per[e.name] = per.get(e.name, 0) + e.time_range.elapsed_us() / 1000 / n
    kinds = {}
    for k, v in per.items(): kinds[_kind(k)] = kinds.get(_kind(k), 0) + v
    busy = sum(per.values())
    return dict(wall_ms=wall, kernel_ms=busy, kernels_per_step=sum(1 for e in prof.events() if e.device_type == DeviceType.CUDA) / n,
                by_kind={k: round(v, 3) for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])},
                top=[(k[:90], round(v, 3)) for k, v in sorted(per.items(), key=lambda kv: -kv[1])[:top]])

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', required=True, help='JSON file of the results')
    p.add_argument('--budget', type=float, default=330, help='start no row after this many seconds')
    p.add_argument('--tiny', action='store_true', help='tiny random CLIP and toy net on the CPU (smoke test)')
    a = p.parse_args(argv)
    from semples.core import get_device
    from semples.research.bench import _Ctx, _row_match, _train_step, time_steps, count_flops, bf16_peak, device_name
    from semples.matching import MatchLoss, voc_match_config
    t_start = time.time(); dev = get_device('cpu' if a.tiny else 'auto')
    size, batch, steps, warm = (64, 4, 2, 1) if a.tiny else (224, 64, 20, 5)
    name = device_name(dev); peak = bf16_peak(name)[0] if dev.type == 'cuda' else float('nan')
    res = dict(device=name, torch=torch.__version__, size=size, batch=batch, steps=steps, rows=[])
    tmp = tempfile.mkdtemp()
    ctx = _Ctx(dev, size, batch, 'ViT-B-16', 'deit_small_patch16_224', a.tiny, tmp, True, 'match', 'default', 16, 16, 128, 30)
    def save(): Path(a.out).parent.mkdir(parents=True, exist_ok=True); Path(a.out).write_text(json.dumps(res, indent=1))
    def row(label, build):
        if time.time() - t_start > a.budget: print(f'skipped {label}: budget spent', flush=True); return None
        t = time.time(); torch.manual_seed(0)
        step, items, _ = build()
        ms = time_steps(step, dev, steps, warm)
        fl = count_flops(step)
        r = dict(variant=label, step_ms=ms, images_per_s=items / ms * 1000, tflops=fl / ms / 1e9, peak_fraction=fl / ms / 1e9 / peak,
                 seconds_with_compile=round(time.time() - t, 1))
        res['rows'].append(r); save(); print(json.dumps(r), flush=True)
        return step
    step = row('default', lambda: _row_match(ctx, 'match', 'fast'))
    if step is not None:
        res['profile'] = kernel_profile(step, dev); save(); print(json.dumps(res['profile'], indent=1), flush=True)
    ctx.compile_mode = 'max-autotune-no-cudagraphs'      # autotuned matrix products and Triton templates for the CLIP tower
    row('max-autotune', lambda: _row_match(ctx, 'match', 'fast'))
    res['seconds'] = round(time.time() - t_start, 1); save()
    for r in res['rows']: print(f"| {r['variant']} | {r['images_per_s']:.1f} | {r['step_ms']:.2f} | {100 * r['peak_fraction']:.1f} |")
    return 0

if __name__ == '__main__': raise SystemExit(main())
