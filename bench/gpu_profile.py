"""Where does the fast stage-(a) step spend its time on the GPU, and does a candidate fix help? (issue 22, step 3)

Run ON THE GPU MACHINE after bench/gpu_session.sh's wheel install (same PYTHONPATH):
    python3 bench/gpu_profile.py --out $OUT/profile.json --budget 100
Rows, each timed like `semples bench` (224 px, batch 64, 5 warm-up + 20 timed steps, CUDA events):
  default         the fast step as `semples bench --compile` times it (CLIP tower and mask generator compiled)
  + profile       3 steps under torch.profiler (`semples.research.bench.kernel_profile`): GPU kernel time per step
                  against the step's time (idle GPU = host overhead), by kind of kernel, and the top kernels
  max-autotune    the CLIP tower compiled with mode 'max-autotune-no-cudagraphs' (autotuned matrix products)
Tried in an earlier run and dropped: 'reduce-overhead' (CUDA graphs: 1,353 vs 1,362 images/s, so the step is not
launch-bound) and the whole loss in one compile region (dynamo refuses the nested compiled mask generator).
A row starts only if --budget seconds are not yet spent, so the run ends inside the device call.
CPU smoke: python bench/gpu_profile.py --tiny --out /tmp/p.json
"""
import argparse, json, time
from pathlib import Path
import torch

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', required=True, help='JSON file of the results')
    p.add_argument('--budget', type=float, default=330, help='start no row after this many seconds')
    p.add_argument('--tiny', action='store_true', help='tiny random CLIP and toy net on the CPU (smoke test)')
    a = p.parse_args(argv)
    from semples.core import get_device, scratch_dir
    from semples.research.bench import _Ctx, _row_match, _bench_row, kernel_profile, bf16_peak, device_name
    t_start = time.time(); dev = get_device('cpu' if a.tiny else 'auto')
    size, batch, steps, warm = (64, 4, 2, 1) if a.tiny else (224, 64, 20, 5)
    name = device_name(dev); peak = bf16_peak(name)[0] if dev.type == 'cuda' else float('nan')
    res = dict(device=name, torch=torch.__version__, size=size, batch=batch, steps=steps, rows=[])
    ctx = _Ctx(dev, size, batch, 'ViT-B-16', 'deit_small_patch16_224', a.tiny, scratch_dir(), True, 'match', 'default', 16, 16, 128, 30)
    def save(): Path(a.out).parent.mkdir(parents=True, exist_ok=True); Path(a.out).write_text(json.dumps(res, indent=1))
    def row(label):
        "Time the fast stage-(a) step as `semples bench` does (its own row builder); return the step for the profile."
        if time.time() - t_start > a.budget: print(f'skipped {label}: budget spent', flush=True); return None
        t = time.time(); built = _row_match(ctx, 'match', 'fast')
        r = {**_bench_row(ctx, 'match', 'fast', lambda c: built, steps, warm, peak), 'variant': label, 'seconds_with_compile': round(time.time() - t, 1)}
        res['rows'].append(r); save(); print(json.dumps(r), flush=True)
        return built[0]
    step = row('default')
    if step is not None:
        res['profile'] = kernel_profile(step, dev); save(); print(json.dumps(res['profile'], indent=1), flush=True)
    ctx.compile_mode = 'max-autotune-no-cudagraphs'      # autotuned matrix products and Triton templates for the CLIP tower
    row('max-autotune')
    res['seconds'] = round(time.time() - t_start, 1); save()
    for r in res['rows']: print(f"| {r['variant']} | {r['items_per_s']:.1f} | {r['step_ms']:.2f} | {100 * r['peak_fraction']:.1f} |")
    return 0

if __name__ == '__main__': raise SystemExit(main())
