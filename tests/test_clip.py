"semples.clip: loading (tags, files, folders, errors), exactness of the prompt encoder, gradients, autocast."
import copy, warnings
import pytest
import torch
import torch.nn.functional as F
import open_clip
from open_clip.model import CLIP, CustomTextCLIP
from open_clip.transformer import QuickGELU
import semples.clip as sc
from semples.clip import TINY_CLIP_CFG, FrozenCLIP, compose_fg_bg, load_clip, positive_pairs, random_clip_dir
from semples.prompts import PromptEncoder, encode_context, nearest_tokens, token_embeddings, prompt_words, vocabulary_features

def nearest_words(clip, feats, words=None, template='a photo of {}.', k=3):
    "The read-out of a prompt as its nearest word sentences (`semples.prompts.prompt_words`)."
    from semples.toyworld import TOY_CLASSES, TOY_BACKGROUNDS
    words = list(words) if words is not None else list(TOY_CLASSES) + list(TOY_BACKGROUNDS)
    return prompt_words(feats, words, vocabulary_features(clip, words, template), k)


@pytest.fixture(scope='module')
def tiny_dir(tmp_path_factory):
    return random_clip_dir(tmp_path_factory.mktemp('tiny') / 'clip', seed=1)


@pytest.fixture(scope='module')
def tiny(tiny_dir):
    return load_clip(f'local-dir:{tiny_dir}')


def _encode_text_ref(clip, sentence):
    with torch.no_grad(): return clip.model.encode_text(clip.tokenize([sentence]))


def _max_diff(clip, words, template='a photo of {}.'):
    ours = encode_context(clip, token_embeddings(clip, words)[None], template, normalize=False)
    return (ours - _encode_text_ref(clip, template.format(words))).abs().max().item()


# ---------------------------------------------------------------- loading
def test_local_dir_is_frozen_and_uses_config(tiny):
    assert not tiny.model.training
    assert not any(p.requires_grad for p in tiny.model.parameters())
    assert tiny.image_size == (64, 64)
    assert tiny.tokenizer.context_length == 77


def test_builtin_name_with_local_checkpoint_files(tmp_path):
    from safetensors.torch import save_file
    ref = load_clip('ViT-S-32-alt', random_init=True)
    sd = ref.model.state_dict()
    torch.save(sd, tmp_path / 'w.pt')
    save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp_path / 'w.safetensors'))
    for f in ['w.pt', 'w.safetensors']:
        c = load_clip('ViT-S-32-alt', pretrained=str(tmp_path / f))
        assert c.source == str(tmp_path / f)
        assert torch.equal(c.model.visual.conv1.weight, ref.model.visual.conv1.weight)
        assert torch.equal(c.model.token_embedding.weight, ref.model.token_embedding.weight)
        assert not c.model.training and not any(p.requires_grad for p in c.model.parameters())


def test_checkpoint_of_another_architecture_is_a_clear_error(tiny, tmp_path):
    f = tmp_path / 'tiny_weights.pt'
    torch.save(tiny.model.state_dict(), f)
    with pytest.raises(ValueError) as e: load_clip('ViT-S-32-alt', pretrained=str(f))
    msg = str(e.value)
    assert 'do not fit' in msg and "'ViT-S-32-alt'" in msg and 'tiny_weights.pt' in msg
    assert len(msg) < 1000, 'the size-mismatch list of torch must be shortened'


def test_folder_with_weights_of_another_architecture(tmp_path):
    wide = copy.deepcopy(TINY_CLIP_CFG); wide['vision_cfg']['width'] = 128; wide['vision_cfg']['head_width'] = 64
    d = random_clip_dir(tmp_path / 'x', model_cfg=wide)
    sc.save_json({'model_cfg': TINY_CLIP_CFG, 'preprocess_cfg': {}}, d / 'open_clip_config.json')
    with pytest.raises(ValueError, match=r'do not fit.*open_clip_model\.safetensors|open_clip_model\.safetensors.*do not fit'):
        load_clip(str(d))


def test_clear_errors_for_names_files_and_folders(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"did you mean 'ViT-B-32'"): load_clip('vit-b-32')
    with pytest.raises(ValueError, match='unknown CLIP model'): load_clip('NoSuchNet')
    with pytest.raises(FileNotFoundError, match='missing.safetensors'):
        load_clip('ViT-B-16', pretrained=str(tmp_path / 'missing.safetensors'))
    with pytest.raises(ValueError, match='neither a pretrained tag'): load_clip('ViT-B-16', pretrained='openia')
    with pytest.raises(ValueError, match='random_init=True'): load_clip('ViT-B-16')
    with pytest.raises(FileNotFoundError, match='not found'): load_clip(f'local-dir:{tmp_path}/nothing')
    with pytest.raises(FileNotFoundError, match='open_clip_config.json'): load_clip(f'local-dir:{tmp_path}')
    monkeypatch.setattr(sc, '_toyclip_dir', lambda: tmp_path / 'no_toyclip')
    with pytest.raises(FileNotFoundError, match='02_toyclip'): load_clip('toyclip')


def test_folder_without_weights_is_refused(tmp_path):
    sc.save_json({'model_cfg': TINY_CLIP_CFG}, tmp_path / 'open_clip_config.json')
    with pytest.raises(FileNotFoundError, match='no weights'): load_clip(str(tmp_path))


def test_folder_with_pretrained_is_refused(tiny_dir):
    with pytest.raises(ValueError, match='not used with a folder'): load_clip(str(tiny_dir), pretrained='openai')


def test_pretrained_tag_gets_quickgelu_from_metadata(monkeypatch):
    "No download here: create_model is replaced by a recorder."
    calls = []
    def fake(name, **kw):
        calls.append((name, kw)); raise RuntimeError('Failed to download weights for tag: offline')
    monkeypatch.setattr(open_clip, 'create_model', fake)
    for tag, qg in [('openai', True), ('laion2b_s34b_b88k', False)]:
        with pytest.raises(RuntimeError, match="pretrained='/path/to/checkpoint.pt'"): load_clip('ViT-B-16', tag)
        assert calls[-1][0] == 'ViT-B-16' and calls[-1][1]['pretrained'] == tag
        assert calls[-1][1]['force_quick_gelu'] is qg
    with pytest.raises(RuntimeError): load_clip('ViT-B/16', 'openai', force_quick_gelu=False)
    assert calls[-1][0] == 'ViT-B-16' and calls[-1][1]['force_quick_gelu'] is False


def test_torchscript_checkpoint_is_loaded_with_quickgelu(tmp_path):
    "OpenAI's .pt releases are TorchScript archives trained with QuickGELU; the loader detects them."
    model = open_clip.create_model('ViT-S-32-alt', force_quick_gelu=True)
    mask = model.attn_mask; del model._buffers['attn_mask']; model.attn_mask = mask  # as in OpenAI's model: not in state_dict
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.jit.save(torch.jit.script(model), str(tmp_path / 'openai_like.pt'))
    assert sc._is_torchscript(tmp_path / 'openai_like.pt')
    c = load_clip('ViT-S-32-alt', pretrained=str(tmp_path / 'openai_like.pt'))
    assert isinstance(c.model.transformer.resblocks[0].mlp.gelu, QuickGELU)
    assert torch.equal(c.model.visual.conv1.weight, model.visual.conv1.weight)
    plain = tmp_path / 'plain.pt'; torch.save(model.state_dict(), plain)
    assert not sc._is_torchscript(plain)
    assert not isinstance(load_clip('ViT-S-32-alt', str(plain)).model.transformer.resblocks[0].mlp.gelu, QuickGELU)


# ---------------------------------------------------------------- exactness
def test_prompt_encoder_exact_tiny(tiny):
    for words in ['red car', 'camel', 'a boat on the water under a blue sky']:
        assert _max_diff(tiny, words) <= 1e-5
    assert _max_diff(tiny, 'cow', 'grass with a {} on it.') <= 1e-5


def test_prompt_encoder_exact_vit_b16():
    b16 = load_clip('ViT-B-16', random_init=True)
    assert b16.model.token_embedding.weight.shape[1] == 512
    for words in ['red car', 'a photo of a dog']:
        assert _max_diff(b16, words) <= 1e-5


def test_prompt_encoder_exact_custom_text_clip_and_refuses_coca_tower():
    plain = FrozenCLIP(CustomTextCLIP(**copy.deepcopy(TINY_CLIP_CFG)))
    assert _max_diff(plain, 'red car') <= 1e-5
    cfg = copy.deepcopy(TINY_CLIP_CFG); cfg['text_cfg']['embed_cls'] = True
    with pytest.raises(NotImplementedError, match='not supported'): PromptEncoder(FrozenCLIP(CustomTextCLIP(**cfg)), 2, 3)


def test_prompt_module_matches_sentence_and_saves_only_vectors(tiny):
    pe = PromptEncoder(tiny, 2, 2, init=['red car', 'blue sky'])
    ref = torch.cat([_encode_text_ref(tiny, 'a photo of red car.'), _encode_text_ref(tiny, 'a photo of blue sky.')])
    assert (pe(normalize=False) - ref).abs().max() <= 1e-5
    assert list(pe.state_dict()) == ['ctx'] and pe.ctx.shape == (2, 2, 64)
    with pytest.raises(ValueError, match='n_ctx <= 71'): PromptEncoder(tiny, 1, 80)


# ---------------------------------------------------------------- gradients
def test_mask_gets_gradient_clip_does_not(tiny):
    before = {k: v.clone() for k, v in tiny.model.state_dict().items()}
    imgs = torch.rand(3, 3, 48, 48)
    labels = torch.tensor([[1., 0, 1], [0, 0, 1], [0, 1, 0]])
    cams = torch.rand(3, 3, 12, 12, requires_grad=True)
    out = tiny.score_masked(imgs, cams, tiny.class_text_features(['boat', 'train', 'cow']), labels)
    assert out.fg.shape == (4,) and out.fg_feats.shape == (4, 32)
    (out.fg - 2.4 * out.bg).sum().backward()
    assert torch.isfinite(cams.grad).all()
    pos = labels.bool()
    assert (cams.grad[pos].abs().flatten(1).sum(1) > 0).all()   # every positive pair's mask gets gradient
    assert cams.grad[~pos].abs().sum() == 0                       # negatives get none
    assert all(p.grad is None for p in tiny.model.parameters())
    assert all(torch.equal(before[k], v) for k, v in tiny.model.state_dict().items())


def test_prompt_gets_gradient_clip_does_not(tiny):
    pe = PromptEncoder(tiny, 3, 5, seed=0)
    img_f = tiny.encode_images(torch.rand(3, 3, 64, 64))
    (1 - sc.cosine(pe(), img_f)).mean().backward()
    assert torch.isfinite(pe.ctx.grad).all() and (pe.ctx.grad.abs().sum((1, 2)) > 0).all()
    assert all(p.grad is None for p in tiny.model.parameters())


# ---------------------------------------------------------------- composition and normalisation
def test_compose_and_pairs():
    b, c = positive_pairs(torch.tensor([[0., 1], [1, 1]]))
    assert b.tolist() == [0, 1, 1] and c.tolist() == [1, 0, 1]
    imgs = torch.rand(2, 3, 6, 6); m = torch.rand(3, 6, 6)
    fg, bg = compose_fg_bg(imgs, m, (b, c))                   # (P, H, W) masks already gathered
    assert torch.allclose(fg, m[:, None] * imgs[b]) and torch.allclose(fg + bg, imgs[b])
    with pytest.raises(ValueError, match='3 gathered masks for 2 pairs'): compose_fg_bg(imgs, m, (b[:2], c[:2]))
    with pytest.raises(ValueError, match='batch size'): compose_fg_bg(imgs, torch.rand(3, 2, 6, 6), (b, c))


def test_blank_pixels_black_for_clip_norm_and_zero_for_paper_norm(tiny):
    paper = FrozenCLIP(tiny.model, tiny.tokenizer, norm='paper')
    x = torch.rand(1, 3, 64, 64); pair = (torch.tensor([0]), torch.tensor([0])); zero = torch.zeros(1, 1, 64, 64)
    ours = tiny.finish(compose_fg_bg(tiny.to_mask_space(x), zero, pair)[0])
    theirs = paper.finish(compose_fg_bg(paper.to_mask_space(x), zero, pair)[0])
    expect = -torch.tensor(tiny.mean) / torch.tensor(tiny.std)
    assert torch.allclose(ours[0, :, 5, 5], expect, atol=1e-6)
    assert theirs.abs().max() == 0
    imnet = (x - torch.tensor(sc.IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(sc.IMAGENET_STD).view(1, 3, 1, 1)
    assert torch.allclose(paper.preprocess(x), imnet, atol=1e-6)
    with pytest.raises(ValueError, match="norm must be"): FrozenCLIP(tiny.model, norm='imagenet')


def test_text_cache_and_ensemble(tiny):
    a = tiny.class_text_features(['boat', 'cow'], ('a photo of a {}.', 'a photo of the {}.'))
    assert a is tiny.class_text_features(['boat', 'cow'], ('a photo of a {}.', 'a photo of the {}.'))
    per = [tiny.encode_texts([f'a photo of {d} boat.']) for d in ['a', 'the']]
    assert torch.allclose(a[0], F.normalize(per[0] + per[1], dim=-1)[0], atol=1e-5)


def test_autocast_bf16_keeps_float32_outputs(tiny):
    imgs = torch.rand(2, 3, 64, 64); labels = torch.tensor([[1., 0], [1, 1]])
    tf = tiny.class_text_features(['boat', 'cow'])
    ref = tiny.score_masked(imgs, torch.rand(2, 2, 64, 64, generator=torch.Generator().manual_seed(0)), tf, labels)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = tiny.score_masked(imgs, torch.rand(2, 2, 64, 64, generator=torch.Generator().manual_seed(0)), tf, labels)
        pf = PromptEncoder(tiny, 2, 3, seed=0)()
    assert out.fg.dtype == torch.float32 and pf.dtype == torch.float32
    assert (out.fg - ref.fg).abs().max() < 0.05          # bf16 is close to fp32, not equal


def test_readouts(tiny):
    pe = PromptEncoder(tiny, 2, 1, init=['camel', 'rails'])
    words = nearest_words(tiny, pe(), k=3)                # ToyWorld's vocabulary by default
    assert [w[0][0] for w in words] == ['camel', 'rails']
    assert nearest_tokens(tiny, pe.ctx) == [[['camel']], [['rails']]]
    assert nearest_tokens(tiny, pe.ctx[0], k=2)[0][0][0] == 'camel'


# ---------------------------------------------------------------- the ToyWorld CLIP as judge
@pytest.mark.skipif(not (sc._toyclip_dir() / 'open_clip_config.json').is_file(),
                    reason='data/toyclip not built yet (nbs/02_toyclip.ipynb)')
def test_toyclip_prefers_the_foreground_on_fresh_images():
    "With ground-truth masks, cos(fg, class) > cos(bg, class) on >= 90% of (image, class) pairs of an unseen world."
    from semples.data import ToyWorldDataset, collate_items
    from semples.toyworld import TOY_CLASSES
    toy = load_clip('toyclip')
    assert not any(p.requires_grad for p in toy.model.parameters())
    batch = collate_items(list(ToyWorldDataset(n=120, seed=31337)))
    with torch.no_grad():
        out = toy.score_masked(batch['image'], sc.class_maps(batch['mask'], len(TOY_CLASSES)),
                               toy.class_text_features(TOY_CLASSES), batch['labels'])
    assert len(out.fg) >= 120
    assert (out.fg > out.bg).float().mean() >= 0.9
    assert _max_diff(toy, 'boat') <= 1e-5 and _max_diff(toy, 'cow on grass') <= 1e-5
    with pytest.raises(ValueError, match='n_ctx <= 26'): PromptEncoder(toy, 6, 30)   # its context is 32 tokens


# ---------------------------------------------------------------- speed switches (issue 9)
def test_cast_bf16_halves_weights_and_keeps_features(tiny_dir, tiny):
    c = load_clip(f'local-dir:{tiny_dir}', cast='bf16')
    assert {p.dtype for p in c.model.parameters()} == {torch.bfloat16}
    x = torch.rand(2, 3, 64, 64, requires_grad=True)
    f = c.encode_images(x)
    assert f.dtype == torch.float32
    assert (f - tiny.encode_images(x.detach())).abs().max() < 0.05
    f.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert not any(p.grad is not None for p in c.model.parameters())
    t = c.class_text_features(['boat', 'water'])
    assert t.dtype == torch.float32 and (t - tiny.class_text_features(['boat', 'water'])).abs().max() < 0.05
    pe = PromptEncoder(c, 2, n_ctx=4, init='normal', seed=0)   # prompts through bf16 weights: float32 vectors get gradients
    pe().sum().backward()
    assert pe.ctx.dtype == torch.float32 and pe.ctx.grad.abs().sum() > 0


def test_amp_option_and_bad_values(tiny_dir, tiny):
    c = load_clip(f'local-dir:{tiny_dir}', amp='bf16')
    x = torch.rand(2, 3, 64, 64)
    assert (c.encode_images(x) - tiny.encode_images(x)).abs().max() < 0.05
    assert 'amp' in repr(c)
    with pytest.raises(ValueError, match='cast must be'): load_clip(f'local-dir:{tiny_dir}', cast='fp8')
    with pytest.raises(ValueError, match='amp must be'): load_clip(f'local-dir:{tiny_dir}', amp='fp16')
