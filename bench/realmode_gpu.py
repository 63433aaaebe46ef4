"""Run every real-mode SemPLeS stage on a VOC-layout folder for a bounded number of steps; print images/s and peak GPU memory.

GPU acceptance (issue 7):  python bench/realmode_gpu.py --out /tmp/bench --n 512 --size 224 --steps 20
  (exports a ToyWorld VOC folder at 224 px, random-init open_clip ViT-B-16 and timm DeiT-S; no download).
CPU smoke test (tests/test_segment.py): python bench/realmode_gpu.py --out DIR --n 8 --size 64 --steps 1 --tiny
Stages: cam (stage 0), match (a), prompts (b), refine (c), the objective check (losses of those masks vs the true masks,
OUT/objective.json), pseudo (CAMs -> PNGs), segment (DeepLabV3-R50, random init).
"""
import argparse, json, time
from pathlib import Path
import torch

def _stage(name, n_images, fn, dev, table):
    if dev.type == 'cuda': torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
    t = time.time(); res = fn()
    if dev.type == 'cuda': torch.cuda.synchronize()
    dt = time.time() - t
    mem = torch.cuda.max_memory_allocated() / 2**30 if dev.type == 'cuda' else float('nan')
    table.append(dict(stage=name, seconds=round(dt, 2), images=n_images, images_per_s=round(n_images / dt, 1), peak_gib=round(mem, 2)))
    print(json.dumps(table[-1]), flush=True)
    return res

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', required=True, help='work folder (data export, runs)')
    p.add_argument('--voc', default=None, help='an existing VOC-layout folder (default: export ToyWorld into OUT/voc)')
    p.add_argument('--n', type=int, default=512, help='training images of the ToyWorld export')
    p.add_argument('--size', type=int, default=224, help='image side of the export')
    p.add_argument('--steps', type=int, default=20, help='optimisation steps per training stage')
    p.add_argument('--batch', type=int, default=32, help='images per step')
    p.add_argument('--tiny', action='store_true', help='tiny random CLIP and toy CAM net (CPU smoke test)')
    a = p.parse_args(argv)
    from semples.core import get_device
    from semples.toyworld import export_voc
    from semples.data import VOCSegDataset
    from semples.clip import load_clip, random_clip_dir
    from semples.cam import train_stage0, voc_cam_config, toy_cam_config, predict_cams
    from semples.loop import LoopConfig
    from semples.matching import train_matching, MatchConfig
    from semples.prompts import train_prompts, PromptConfig, prompt_features
    from semples.refine import train_refine, RefineConfig
    from semples.pseudo import save_pseudo_masks
    from semples.segment import SegConfig, PseudoMaskDataset, train_segmenter
    out = Path(a.out); dev = get_device('auto'); B, S = a.batch, a.steps
    voc = Path(a.voc) if a.voc else export_voc(out/'voc', {'train': a.n, 'val': max(8, a.n // 8)}, size=a.size, seed=11)
    train = VOCSegDataset(voc, 'train', cache_dir=False); val = VOCSegDataset(voc, 'val', cache_dir=False)
    C = len(train.classes)
    clip = load_clip('local-dir:' + str(random_clip_dir(out/'tinyclip')) if a.tiny else 'ViT-B-16', random_init=not a.tiny, device=str(dev))
    ccfg = toy_cam_config(n_classes=C) if a.tiny else voc_cam_config(n_classes=C)
    amp = 'bf16' if dev.type == 'cuda' else None
    print(json.dumps(dict(device=torch.cuda.get_device_name(0) if dev.type == 'cuda' else 'cpu', voc=str(voc), n_train=len(train), size=a.size, steps=S, batch=B)))
    table = []
    net0, _ = _stage('cam (stage 0)', S * B, lambda: train_stage0(train, ccfg, LoopConfig(steps=S, batch_size=B, device=str(dev)), out/'cam', progress=False), dev, table)
    neta, _ = _stage('match (a)', S * B, lambda: train_matching(net0, train, clip, MatchConfig(steps=S, batch_size=B, amp=amp, device=str(dev)), out/'match', progress=False), dev, table)
    pe, _ = _stage('prompts (b)', len(train), lambda: train_prompts(neta, train, clip, PromptConfig(steps=S, batch_size=B, device=str(dev)), out=out/'prompts', progress=False), dev, table)
    netc, _ = _stage('refine (c)', S * B, lambda: train_refine(net0, train, clip, prompt_features(pe), RefineConfig(steps=S, batch_size=B, amp=amp, device=str(dev)), out=out/'refine', progress=False), dev, table)
    from semples.refine import objective_losses        # does the objective prefer the true masks? (10_refine, research/02_diagnosis)
    k = min(64, len(train))
    obj = _stage('objective check', k, lambda: objective_losses(clip, [train[i] for i in range(k)], {'cam': net0, 'matching': neta, 'semples': netc}, train.classes,
                 MatchConfig(batch_size=B, amp=amp, device=str(dev)), RefineConfig(batch_size=B, amp=amp, device=str(dev)), prompt_features(pe), batch_size=B), dev, table)
    (out/'objective.json').write_text(json.dumps(obj, indent=1))
    def pseudo():
        cams = predict_cams(netc, train, scales=(1.0,), flip=True, batch_size=B, device=str(dev), progress=False)
        return save_pseudo_masks(cams, train, out/'pseudo', 0.45, progress=False)
    _stage('pseudo', len(train), pseudo, dev, table)
    seg = SegConfig(arch='toy' if a.tiny else 'deeplabv3_resnet50', num_classes=C + 1, norm='gn' if a.tiny else 'bn', steps=S, batch_size=B, ckpt_every=0, device=str(dev))
    _stage('segment', S * B, lambda: train_segmenter(seg, PseudoMaskDataset(train, out/'pseudo'), out/'segment', val_ds=val), dev, table)
    (out/'bench.json').write_text(json.dumps(table, indent=1))
    from semples.research.bench import realmode_markdown
    print(realmode_markdown(table))
    return 0

if __name__ == '__main__': raise SystemExit(main())
