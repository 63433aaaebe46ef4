"Edge cases of semples.toyclip: the stored checkpoint, open_clip loading, masking fill, loss, metrics arguments."
import contextlib, hashlib, io, json, shutil
import numpy as np
import pytest
import torch
import open_clip
from semples.toyworld import ToyWorld, TOY_CLASSES
from semples.toyclip import (toyclip_dir, load_toyclip, verify_toyclip, save_toyclip, build_toyclip, toyclip_tokenizer,
                             toyworld_token_ids, mask_image, masked_views, contrastive_loss, toyclip_metrics, toyclip_eval,
                             TOYCLIP_CFG, TOYCLIP_PREPROCESS)


@pytest.fixture(scope='module')
def toyclip():
    return load_toyclip('cpu')


def test_checkpoint_files_match_sha256sums_and_size():
    d = toyclip_dir()
    lines = (d / 'SHA256SUMS').read_text().splitlines()
    names = sorted(l.split()[1] for l in lines)
    assert names == ['open_clip_config.json', 'open_clip_model.safetensors']
    for l in lines:
        digest, name = l.split()
        assert hashlib.sha256((d / name).read_bytes()).hexdigest() == digest, name
    assert sum(f.stat().st_size for f in d.iterdir()) <= 20e6
    cfg = json.loads((d / 'open_clip_config.json').read_text())
    assert cfg['model_cfg'] == json.loads(json.dumps(TOYCLIP_CFG)) and cfg['preprocess_cfg']['size'] == 64
    assert cfg['model_cfg']['text_cfg']['vocab_size'] == 49408
    assert cfg['semples']['train_seed'] not in (2024, 2025)   # the default evaluation seeds are fresh


def test_plain_open_clip_loads_the_folder_into_float32():
    name = 'local-dir:' + str(toyclip_dir())
    m = open_clip.create_model(name)
    assert all(p.dtype == torch.float32 for p in m.parameters())
    assert m.token_embedding.weight.shape == (49408, TOYCLIP_CFG['text_cfg']['width'])
    tok = open_clip.get_tokenizer(name)
    assert torch.equal(tok(['a photo of a camel on sand.']), toyclip_tokenizer()(['a photo of a camel on sand.']))
    assert tok(['x']).shape == (1, TOYCLIP_CFG['text_cfg']['context_length'])


def test_load_toyclip_is_frozen_and_eval(toyclip):
    model, tok = toyclip
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    with torch.no_grad():
        f = model.encode_image(torch.rand(2, 3, 64, 64))
    assert f.shape == (2, TOYCLIP_CFG['embed_dim'])


def test_damaged_checkpoint_is_refused(tmp_path):
    d = tmp_path / 'tc'
    shutil.copytree(toyclip_dir(), d)
    verify_toyclip(d)
    data = bytearray((d / 'open_clip_model.safetensors').read_bytes()); data[-1] ^= 1
    (d / 'open_clip_model.safetensors').write_bytes(bytes(data))
    with pytest.raises(ValueError, match='does not match'): load_toyclip('cpu', d)
    with pytest.raises(FileNotFoundError, match='no ToyCLIP checkpoint'): load_toyclip('cpu', tmp_path / 'nothing')


def test_save_is_atomic_on_failure(tmp_path):
    m = build_toyclip()
    p = save_toyclip(m, tmp_path / 'tc')
    before = (p / 'SHA256SUMS').read_text()
    with pytest.raises(TypeError): save_toyclip(m, p, record={'bad': object()})
    assert (p / 'SHA256SUMS').read_text() == before
    assert sorted(x.name for x in tmp_path.iterdir()) == ['tc']


def test_masking_fill_is_black_in_pixel_space():
    x = ToyWorld(seed=1)[0]
    m = (x['mask'] > 0).astype(np.float32)
    v = mask_image(x['image'], m)
    assert v.shape == (3, 64, 64) and v.min() >= 0 and v.max() <= 1
    assert torch.all(v[:, x['mask'] == 0] == 0)
    assert torch.allclose(v[:, x['mask'] > 0], torch.from_numpy(x['image']).permute(2, 0, 1).float()[:, x['mask'] > 0] / 255)
    soft = mask_image(torch.ones(2, 3, 4, 4), torch.full((2, 4, 4), 0.25))
    assert torch.allclose(soft, torch.full((2, 3, 4, 4), 0.25))
    with pytest.raises(ValueError, match='differs'): mask_image(torch.ones(3, 4, 4), torch.ones(5, 5))
    fg, fc, bg, bc = masked_views(x, x['objects'][0])
    assert fc == f"a photo of a {x['objects'][0]}" and x['objects'][0] not in bc
    with pytest.raises(ValueError, match='not in this sample'):
        masked_views(x, next(c for c in TOY_CLASSES if c not in x['objects']))


def test_contrastive_loss_shares_targets_for_identical_captions():
    torch.manual_seed(0)
    img = torch.nn.functional.normalize(torch.randn(6, 8), dim=-1)
    txt = torch.nn.functional.normalize(torch.randn(3, 8), dim=-1)
    idx = torch.tensor([0, 1, 2, 0, 1, 2])
    base = contrastive_loss(img, txt, idx, 10.)
    perm = torch.tensor([3, 4, 5, 0, 1, 2])          # swapping images that share a caption changes nothing
    assert torch.allclose(base, contrastive_loss(img[perm], txt, idx, 10.))
    assert base > 0


def test_token_ids_keep_end_token_largest():
    used = toyworld_token_ids()
    assert used[0] == 0 and used[-1] == 49407 and len(used) < 40


def test_metrics_refuse_bad_arguments(toyclip):
    model, tok = toyclip
    with pytest.raises(ValueError, match='n must'): toyclip_metrics(model, tok, n=-1)
    model.semples_record = {'train_seed': 1000}
    with pytest.raises(ValueError, match='training seed'): toyclip_metrics(model, tok, seed=1000, n=12)
    with pytest.raises(ValueError, match='training seed'): toyclip_metrics(model, tok, seed=999, n=12)


def test_toyclip_eval_prints_one_json_object():
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf): toyclip_eval(seed=31, n=12)
    out = json.loads(buf.getvalue())
    for k in ('object_acc', 'background_acc', 'masked_fg_acc', 'fg_over_bg'): assert 0 <= out[k] <= 1
    assert set(out['cooc_sim']) == {'own', 'other'}
