"semples.explore: the widget explorers, driven without a browser (set a widget value, read .result)."
import numpy as np
import pytest
import torch

from semples.data import ToyWorldDataset
from semples.pseudo import synthetic_cams, cams_to_mask, evaluate_cams
from semples.metrics import image_miou
from semples.explore import (mask_panels, mask_browser, ThresholdStudy, threshold_explorer,
                             prompt_similarities, prompt_inspector)


@pytest.fixture(scope='module')
def toy():
    ds = ToyWorldDataset(n=8, start=300, split='toy-explore', size=32, seed=11)
    # CAMs at a lower resolution than the masks, so the study must resize them
    cams = {i: synthetic_cams(ds.read_mask(i), 6, stride=4, gamma=2.0, noise=0.1, seed=k)[:, ::2, ::2].clone()
            for k, i in enumerate(ds.ids)}
    return ds, cams


@pytest.fixture(scope='module')
def clip():
    from semples.clip import load_clip
    return load_clip('toyclip')


def test_mask_browser_panels_follow_slider(toy):
    ds, _ = toy
    imgs = [ds.read_image(i) for i in ds.ids]
    gts = [ds.read_mask(i) for i in ds.ids]
    heat = [np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32)] * len(imgs)
    w = mask_browser(imgs, {'gt': gts, 'heat': heat, 'empty': [None] * len(imgs),
                            'torch': [torch.as_tensor(g) for g in gts]}, titles=ds.ids)
    for i in (len(imgs) - 1, 2):
        w.children[0].value = i
        r = w.result
        assert [p['kind'] for p in r] == ['mask', 'heat', 'image', 'mask']
        want = sorted(set(np.unique(gts[i]).tolist()) - {0, 255})
        assert r[0]['classes'] == want and r[3]['classes'] == want
        assert r[0]['fg_fraction'] == pytest.approx(float((gts[i] > 0).mean()))
    assert w.children[0].max == len(imgs) - 1


def test_mask_panels_ignore_index_is_not_a_class():
    m = np.zeros((4, 4), np.uint8); m[0] = 255; m[1, :2] = 3
    p = mask_panels([np.zeros((4, 4, 3), np.uint8)], {'m': [m]}, 0)[0]
    assert p['classes'] == [3] and p['fg_fraction'] == pytest.approx(2 / 16)


def test_mask_browser_rejects_bad_input(toy):
    ds, _ = toy
    imgs = [ds.read_image(i) for i in ds.ids]
    with pytest.raises(ValueError, match='one mask'): mask_browser(imgs, {'gt': [None]})
    with pytest.raises(ValueError, match='non-empty dict'): mask_browser(imgs, [None] * len(imgs))
    with pytest.raises(ValueError, match='empty'): mask_browser([], {'gt': []})


def test_threshold_study_matches_evaluate_cams_and_hand_iou(toy):
    ds, cams = toy
    st = ThresholdStudy(cams, ds)
    for t in (0.1, 0.45, 0.8):
        assert st.miou_at(t) == pytest.approx(evaluate_cams(cams, ds, threshold=t)['miou'], abs=1e-6)
        k = ds.ids[1]
        assert torch.equal(st.mask_at(k, t), cams_to_mask(cams[k], ds.labels_of(k), t, size=(32, 32)))
    # above every normalised CAM only background is left, so only background can have a non-zero IoU
    assert all(int((st.mask_at(k, 1.01) > 0).sum()) == 0 for k in ds.ids)
    pc = st.scores_at(1.01)['per_class']
    assert pc['background'] > 0 and all(v in (None, 0.0) for c, v in pc.items() if c != 'background')
    assert st.miou_at(0.45) > st.miou_at(1.01)


def test_threshold_study_from_items_without_read_mask(toy):
    ds, cams = toy
    items = {k: ds[k] for k in ds.ids}          # a plain dict of dataset items
    a, b = ThresholdStudy(cams, ds), ThresholdStudy(cams, items)
    assert a.miou_at(0.3) == pytest.approx(b.miou_at(0.3), abs=1e-9)
    with pytest.raises(ValueError, match='ground truth'):
        ThresholdStudy(cams, {k: {'labels': it['labels'], 'image': it['image']} for k, it in items.items()})
    with pytest.raises(ValueError, match=r'\(C, h, w\)'): ThresholdStudy({ds.ids[0]: torch.zeros(6, 4)}, ds)


def test_threshold_explorer_widget(toy):
    ds, cams = toy
    w = threshold_explorer(cams, ds, thresholds=(0.6, 0.2, 0.4), threshold=0.43, plot=False)
    assert list(w.children[0].options) == [0.2, 0.4, 0.6]
    assert w.result['threshold'] == 0.4                                   # snapped to the nearest value
    w.children[0].value = 0.6
    assert w.result['miou'] == pytest.approx(w.study.miou_at(0.6))
    k = ds.ids[3]; w.children[1].value = k
    pred = cams_to_mask(cams[k], ds.labels_of(k), 0.6, size=(32, 32))
    assert w.result['image'] == k
    assert w.result['image_miou'] == pytest.approx(float(image_miou(pred, torch.as_tensor(ds.read_mask(k)).long(), 7)))
    assert [t for t, _ in w.curve] == [0.2, 0.4, 0.6]


def test_prompt_inspector_from_words(clip):
    from semples.clip import PromptEncoder
    words = ['water', 'sky', 'grass']
    pe = PromptEncoder(clip, 3, n_ctx=1, init=words)
    w = prompt_inspector(clip, pe, ['a', 'b', 'c'], words=words + ['boat', 'cow'], k=2, plot=False)
    for name, word in zip('abc', words):
        w.children[0].value = name
        assert w.result['nearest'][0][0] == word
        assert w.result['nearest'][0][1] == pytest.approx(1.0, abs=1e-4)
        assert max(w.result['sims'], key=w.result['sims'].get) == word
        assert len(w.result['nearest']) == 2


def test_prompt_similarities_are_cosines(clip):
    feats = torch.randn(4, clip.encode_texts(['x']).shape[1]) * 7
    words, s = prompt_similarities(clip, feats, ['water', 'boat'])
    assert s.shape == (4, 2) and float(s.abs().max()) <= 1 + 1e-5
    t = clip.class_text_features(words, ('a photo of {}.',))
    assert torch.allclose(s, torch.nn.functional.normalize(feats, dim=-1) @ t.T, atol=1e-5)
    with pytest.raises(ValueError, match='dim'): prompt_similarities(clip, torch.randn(2, 5))
    with pytest.raises(ValueError, match='empty'): prompt_similarities(clip, feats, [])
    with pytest.raises(ValueError, match='one name per prompt'): prompt_inspector(clip, feats, ['a'], plot=False)
