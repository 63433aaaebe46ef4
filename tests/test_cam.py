"Edge cases of semples.cam: exact resume, shapes, the freeze option, errors, the stored ToyWorld network, a DeiT-S smoke run."
import hashlib, shutil, time
from pathlib import Path
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from semples.core import project_root, load_json, seed_everything
from semples.data import ToyWorldDataset, VOCSegDataset, resize_transform
from semples.cam import TOY_CAM_FILE, CamNet, CamNetConfig, background_leak, cam_to_mask, create_cam_net, export_cam, infer_cams, load_cam_net, load_toy_cam, predict_cams, stage0_loss, toy_cam_config, train_stage0, voc_cam_config
from semples.loop import CKPT_NAME, LoopConfig, batch_indices, history, train_loop

torch.set_num_threads(1)

@pytest.fixture(scope='module')
def tiny():
    return ToyWorldDataset(n=16, start=0, split='tiny', size=32, seed=0)

class Interrupt(Exception): pass

def _crash_after(n_calls, loss_fn):
    "A loss function that raises on its n-th call, like a job killed mid-run."
    calls = [0]
    def f(model, batch):
        calls[0] += 1
        if calls[0] == n_calls: raise Interrupt('killed')
        return loss_fn(model, batch)
    return f

def _same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    return all(torch.equal(sa[k], sb[k]) for k in sa)

def test_resume_equals_uninterrupted(tiny, tmp_path):
    lc = LoopConfig(steps=7, batch_size=4, ckpt_every=3, log_every=1, device='cpu')
    ref, ref_recs = train_stage0(tiny, loop_cfg=lc, out=tmp_path/'ref', progress=False)
    # interrupted: a crash on step 5 (checkpoint of step 3 survives), then a plain resume to 7
    seed_everything(lc.seed); m = create_cam_net()            # the same start as train_stage0
    cfg = {k: v for k, v in load_json(tmp_path/'ref'/'config.json').items() if k != 'loop'}
    with pytest.raises(Interrupt): train_loop(m, _crash_after(5, stage0_loss), tiny, lc, out=tmp_path/'cut', config=cfg, progress=False)
    assert torch.load(tmp_path/'cut'/CKPT_NAME, weights_only=True)['step'] == 3
    assert not _same_state(m, ref)
    resumed, recs = train_stage0(tiny, loop_cfg=lc, out=tmp_path/'cut', progress=False)
    assert _same_state(resumed, ref)
    assert [r['step'] for r in recs] == list(range(1, 8))
    np.testing.assert_allclose([r['loss'] for r in recs], [r['loss'] for r in ref_recs], rtol=1e-6)
    # the optimiser state matches as well
    a, b = (torch.load(p/CKPT_NAME, weights_only=True)['optimizer']['state'] for p in (tmp_path/'ref', tmp_path/'cut'))
    assert all(torch.equal(a[i][k], b[i][k]) for i in a for k in a[i])

def test_resume_restores_global_rng(tmp_path):
    "Dropout draws from torch's global generator: its state must travel in the checkpoint."
    ds = [dict(image=torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(i)), labels=torch.ones(2), id=str(i)) for i in range(6)]
    def make():
        torch.manual_seed(0); return nn.Sequential(nn.Conv2d(3, 4, 3), nn.Dropout(0.5), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    loss = lambda m, b: F.multilabel_soft_margin_loss(m(b['image']), b['labels'])
    lc = LoopConfig(steps=6, batch_size=2, ckpt_every=2, device='cpu')
    ref = make(); train_loop(ref, loss, ds, lc, out=tmp_path/'a', progress=False)
    m = make(); train_loop(m, loss, ds, lc, out=tmp_path/'b', until=2, progress=False)
    torch.manual_seed(999)                                   # something else uses the generator in between
    m = make(); train_loop(m, loss, ds, lc, out=tmp_path/'b', progress=False)
    assert _same_state(m, ref)
    m2 = make(); torch.manual_seed(999)                      # control: other dropout draws give other weights,
    train_loop(m2, loss, ds, lc, out=None, progress=False)    # so the equality above is not vacuous
    assert not _same_state(m2, ref)

def test_batch_order_depends_only_on_seed_and_step():
    assert (batch_indices(50, 8, 17, 3) == batch_indices(50, 8, 17, 3)).all()
    epoch = np.concatenate([batch_indices(12, 4, s, 1) for s in range(3)])
    assert sorted(epoch) == list(range(12))
    assert not (batch_indices(50, 8, 0, 1) == batch_indices(50, 8, 0, 2)).all()

def test_shapes_and_masks():
    net = create_cam_net()
    out = net(torch.rand(2, 3, 48, 80))
    assert out.logits.shape == (2, 6) and out.cams.shape == (2, 6, 12, 20)
    m = cam_to_mask(out.cams, (48, 80), labels=torch.tensor([[1., 0, 0, 0, 0, 1], [0, 1, 0, 0, 0, 0]]))
    assert m.shape == (2, 6, 48, 80) and m.min() >= 0 and m.max() < 1
    assert m[0, 1:5].abs().sum() == 0 and m.requires_grad
    with torch.no_grad(): net.head.bias.fill_(1.0)           # untrained: keep the maps positive (an all-zero CAM stays 0)
    c = infer_cams(net, torch.rand(1, 3, 37, 53), torch.ones(1, 6), scales=(1.0, 0.8, 1.2))
    assert c.shape == (1, 6, 37, 53)
    torch.testing.assert_close(c.amax((2, 3)), torch.ones(1, 6), atol=1e-4, rtol=0)

def test_freeze_trains_only_the_head(tiny):
    net = create_cam_net(toy_cam_config(freeze_backbone=True))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    train_loop(net, stage0_loss, tiny, LoopConfig(steps=3, batch_size=4, device='cpu'), progress=False)
    after = net.state_dict()
    changed = {k.split('.')[0] for k in before if not torch.equal(before[k], after[k])}
    assert changed == {'head'}                               # BatchNorm running stats of the backbone did not move either
    net.freeze_backbone(False)
    assert all(p.requires_grad for p in net.parameters()) and net.training and net.backbone.training

def test_errors(tiny, tmp_path):
    net = create_cam_net()
    with pytest.raises(ValueError, match='permute'): net(torch.rand(1, 32, 32, 3))
    with pytest.raises(ValueError, match='unknown timm model'): create_cam_net(CamNetConfig(backbone='no_such_net'))
    with pytest.raises(FileNotFoundError, match='no pretrained weights'): create_cam_net(toy_cam_config(pretrained_file=str(tmp_path/'x.pth')))
    with pytest.raises(ValueError, match='schedule'): LoopConfig(schedule='step')
    with pytest.raises(ValueError, match='batch_size'): LoopConfig(batch_size=0)
    with pytest.raises(ValueError, match='no parameter to train'):
        m = nn.Linear(2, 2).requires_grad_(False); train_loop(m, lambda m, b: m(b['image']).sum(), tiny, LoopConfig(steps=1, device='cpu'), progress=False)
    with pytest.raises(FloatingPointError, match='lower the learning rate'):
        train_loop(create_cam_net(), lambda m, b: m(b['image']).logits.sum() * float('nan'), tiny, LoopConfig(steps=1, batch_size=2, device='cpu'), progress=False)
    with pytest.raises(ValueError, match='n_classes'):
        train_stage0(tiny, toy_cam_config(n_classes=4), LoopConfig(steps=1, batch_size=2, device='cpu'), progress=False)
    with pytest.raises(FileNotFoundError, match='no CAM checkpoint'): load_cam_net(tmp_path)
    torch.save(dict(model={}), tmp_path/'bare.pt')
    with pytest.raises(ValueError, match='no model configuration'): load_cam_net(tmp_path/'bare.pt')
    with pytest.raises(ValueError, match='eps must be > 0'): cam_to_mask(torch.zeros(1, 1, 2, 2), 4, eps=0.0)
    voc = VOCSegDataset(project_root()/'data'/'voc_mini', split='mini', cache_dir=False)
    with pytest.raises(ValueError, match='no known backgrounds'): background_leak({}, voc)
    lc = LoopConfig(steps=2, batch_size=2, device='cpu')
    train_stage0(tiny, loop_cfg=lc, out=tmp_path/'run', progress=False)
    with pytest.raises(ValueError, match='another config'):
        train_stage0(tiny, loop_cfg=LoopConfig(steps=2, batch_size=2, lr=0.5, device='cpu'), out=tmp_path/'run', progress=False)
    m, recs = train_stage0(tiny, loop_cfg=LoopConfig(steps=2, batch_size=2, lr=0.5, device='cpu'), out=tmp_path/'run', resume=False, progress=False)
    assert [r['step'] for r in history(tmp_path/'run')] == [2] and recs[-1]['step'] == 2

def test_leak_is_zero_for_perfect_cams():
    ds = ToyWorldDataset(n=30, start=500, split='leak', size=32, seed=3)
    perfect = {}
    for i in ds.ids:
        m = torch.as_tensor(ds.read_mask(i)).long()
        perfect[i] = torch.stack([(m == k + 1).float() for k in range(6)])
    for kw in (dict(), dict(threshold=0.5), dict(threshold=0.5, measure='fpr')):
        lk = background_leak(perfect, ds, **kw)
        assert lk['own'] == 0 and lk['other'] == 0
    lk = background_leak({i: torch.ones(6, 32, 32) for i in ds.ids}, ds, measure='fpr')   # everything on: fpr 1 everywhere
    assert lk['own'] == pytest.approx(1.0) and lk['other'] == pytest.approx(1.0)

def test_stored_toy_network(tmp_path):
    p = project_root()/TOY_CAM_FILE
    if not p.exists(): pytest.skip('the stored ToyWorld CAM network is not there yet')
    assert p.stat().st_size <= 2_000_000
    net = load_toy_cam()
    assert isinstance(net, CamNet) and not net.training
    ds = ToyWorldDataset(n=40, start=300_000, split='check', seed=0)
    cams = predict_cams(net, ds, progress=False)
    # the trained network scores the present classes higher than the absent ones
    x = torch.stack([ds[i]['image'] for i in range(len(ds))]); y = torch.stack([ds[i]['labels'] for i in range(len(ds))])
    with torch.no_grad(): logits = net(x).logits
    assert ((logits > 0) == (y > 0)).float().mean() > 0.9
    assert all(c.shape == (6, 64, 64) for c in cams.values())
    bad = tmp_path/'stage0.pt'; shutil.copy(p, bad); shutil.copy(p.parent/'SHA256SUMS', tmp_path/'SHA256SUMS')
    with open(bad, 'ab') as f: f.write(b'x')
    with pytest.raises(ValueError, match='damaged'): load_toy_cam(bad)

def test_export_is_small_and_recorded(tiny, tmp_path):
    train_stage0(tiny, loop_cfg=LoopConfig(steps=2, batch_size=2, device='cpu'), out=tmp_path/'run', progress=False)
    digest = export_cam(tmp_path/'run', tmp_path/'w'/'net.pt')
    assert (tmp_path/'w'/'SHA256SUMS').read_text() == f'{digest}  net.pt\n'
    assert hashlib.sha256((tmp_path/'w'/'net.pt').read_bytes()).hexdigest() == digest
    ck = torch.load(tmp_path/'w'/'net.pt', weights_only=True)
    assert 'optimizer' not in ck and [r['step'] for r in ck['history']] == [2]
    assert torch.equal(load_toy_cam(tmp_path/'w'/'net.pt').head.weight, load_cam_net(tmp_path/'run').head.weight)

def test_deit_small_smoke_on_voc_mini(tmp_path):
    "Real mode: DeiT-S/16 (random init) on the three real VOC images, 2 steps, then multi-scale CAMs at full size."
    t0 = time.time()
    voc = VOCSegDataset(project_root()/'data'/'voc_mini', split='mini', cache_dir=False, transform=resize_transform(224))
    net, recs = train_stage0(voc, voc_cam_config(), LoopConfig(steps=2, batch_size=3, lr=5e-4, optimizer='adamw', log_every=1, device='cpu'),
                             out=tmp_path/'deit', progress=False)
    assert len(recs) == 2 and all(np.isfinite(r['loss']) for r in recs)
    assert net(torch.rand(1, 3, 224, 224)).cams.shape == (1, 20, 14, 14)
    full = VOCSegDataset(project_root()/'data'/'voc_mini', split='mini', cache_dir=False)
    it = full[0]
    c = infer_cams(load_cam_net(tmp_path/'deit'), it['image'][None], it['labels'][None], scales=(1.0, 1.2))
    assert c.shape == (1, 20, *it['image'].shape[1:])
    print(f'DeiT-S smoke: {time.time() - t0:.1f} s')

# ---- data loading, host-device syncs (issue 9) ---------------------------------------------------------------

def _old_loop(ds, lc:LoopConfig):
    "The loop as it was before the DataLoader: batches built in the main thread, .item() every step."
    from semples.loop import collate, hflip_batch, step_generator, lr_at
    seed_everything(lc.seed); net = create_cam_net()
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lc.lr)
    losses = []
    for step in range(lc.steps):
        b = collate([ds[int(i)] for i in batch_indices(len(ds), lc.batch_size, step, lc.seed)])
        b = hflip_batch(b, step_generator(lc.seed, step))
        for g in opt.param_groups: g['lr'] = lr_at(lc, step)
        loss, _ = stage0_loss(net, b)
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step(); losses.append(loss.item())
    return net, losses

@pytest.mark.parametrize('workers', [0, 2])
def test_loader_gives_the_old_loop_bit_for_bit(tiny, workers):
    lc = LoopConfig(steps=4, batch_size=6, log_every=1, device='cpu')
    ref, ref_losses = _old_loop(tiny, lc)
    net, recs = train_stage0(tiny, loop_cfg=LoopConfig(**{**lc.__dict__, 'num_workers': workers}), progress=False)
    assert [r['loss'] for r in recs] == ref_losses                 # the same float32 values, step by step
    assert _same_state(net, ref)

def test_resume_with_other_workers(tiny, tmp_path):
    "num_workers is not part of a run's identity: a run paused with 0 workers resumes with 2 to the same weights."
    lc = LoopConfig(steps=4, batch_size=4, log_every=2, device='cpu')
    ref, _ = train_stage0(tiny, loop_cfg=lc, progress=False)
    train_stage0(tiny, loop_cfg=lc, out=tmp_path/'r', until=2, progress=False)
    net, recs = train_stage0(tiny, loop_cfg=LoopConfig(**{**lc.__dict__, 'num_workers': 2, 'prefetch_factor': 1}), out=tmp_path/'r', progress=False)
    assert _same_state(net, ref) and [r['step'] for r in recs] == [2, 4]
    assert 'num_workers' not in load_json(tmp_path/'r'/'config.json')['loop']

def test_non_finite_loss_is_caught_at_the_log_step(tiny):
    calls = [0]
    def loss(m, b):
        calls[0] += 1
        l = m(b['image']).logits.mean()
        return l * float('nan') if calls[0] == 3 else l
    with pytest.raises(FloatingPointError, match=r'in steps 3\.\.4.*lower the learning rate'):
        train_loop(create_cam_net(), loss, tiny, LoopConfig(steps=6, batch_size=2, log_every=2, device='cpu'), progress=False)
    assert calls[0] == 4                                           # noticed at the end of the window, not at step 3

def test_loss_fn_protocol(tiny):
    lc = LoopConfig(steps=2, batch_size=2, log_every=1, device='cpu')
    base = lambda m, b: stage0_loss(m, b)
    seed_everything(0); a = create_cam_net(); ra = train_loop(a, base, tiny, lc, progress=False)
    seed_everything(0); b = create_cam_net()
    rb = train_loop(b, lambda m, bt: (*stage0_loss(m, bt), torch.tensor(17.0)), tiny, lc, progress=False)
    assert ra == rb and _same_state(a, b)                         # one process: the weight changes nothing
    assert isinstance(stage0_loss(a, {'image': torch.rand(2, 3, 32, 32), 'labels': torch.ones(2, 6)})[1]['acc'], torch.Tensor)
    with pytest.raises(ValueError, match='scalar tensor'):
        train_loop(create_cam_net(), lambda m, bt: m(bt['image']).logits, tiny, lc, progress=False)
    names = iter([dict(x=1.0), dict(y=1.0)])
    with pytest.raises(ValueError, match='keep the names fixed'):
        train_loop(create_cam_net(), lambda m, bt: (m(bt['image']).logits.mean(), next(names)), tiny, lc, progress=False)
    for bad, msg in ((dict(pin_memory='yes'), "'auto', 'on' or 'off'"), (dict(prefetch_factor=2), 'needs num_workers'),
                     (dict(num_workers=1.5), 'num_workers must be')):
        with pytest.raises(ValueError, match=msg): LoopConfig(**bad)
