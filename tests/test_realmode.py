"""Real-mode smoke in CI: the SemPLeS stage code at real sizes on the three real VOC images of data/voc_mini, with a
random-init open_clip ViT-B-16 and a random timm DeiT-S CAM network (the paper's architectures; no weights needed)."""
import pytest, torch
from semples.core import project_root
from semples.data import VOCSegDataset, resize_transform
from semples.clip import load_clip
from semples.cam import create_cam_net, voc_cam_config
from semples.matching import train_matching, voc_match_config
from semples.prompts import train_prompts, prompt_features, voc_prompt_config
from semples.refine import train_refine, voc_refine_config

def test_stages_a_b_c_run_at_224px_with_vit_b16_and_deit_s(tmp_path):
    torch.manual_seed(0)
    voc = VOCSegDataset(project_root()/'data'/'voc_mini', split='mini', transform=resize_transform(224), cache_dir=False)
    assert len(voc) == 3 and len(voc.classes) == 20
    clip = load_clip('ViT-B-16', random_init=True)
    net = create_cam_net(voc_cam_config())
    assert net.backbone.name.startswith('deit_small')
    kw = dict(steps=1, batch_size=2, log_every=1, device='cpu')
    na, ra = train_matching(net, voc, clip, voc_match_config(**kw), out=tmp_path/'a', progress=False)
    pe, rb = train_prompts(na, voc, clip, voc_prompt_config(**{**kw, 'batch_size': 4}), out=tmp_path/'b', progress=False, allow_missing=True)
    pf = prompt_features(pe)
    nc, rc = train_refine(net, voc, clip, pf, voc_refine_config(**kw), out=tmp_path/'c', progress=False)
    assert pf.shape == (20, clip.class_text_features(['x']).shape[1])
    for recs in (ra, rb, rc): assert len(recs) == 1 and torch.isfinite(torch.tensor(recs[0]['loss']))
    assert 's_ref' in rc[0]                                     # the refinement term ran
    for d in 'abc': assert (tmp_path/d/'checkpoint.pt').is_file() and (tmp_path/d/'config.json').is_file()
    assert not torch.equal(na.head.weight, net.head.weight)     # stage (a) trained a copy: its head moved, the input net did not
    assert not torch.equal(nc.head.weight, net.head.weight)
