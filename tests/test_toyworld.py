"Edge cases of semples.toyworld: argument errors, determinism, exact masks, VOC export layout."
import json
import numpy as np
import pytest
from PIL import Image
from semples.core import load_mask
from semples.toyworld import ToyWorld, export_voc, TOY_CLASSES, TOY_BACKGROUNDS, COOCCURRENCE, caption, cooccurrence_matrix


@pytest.mark.parametrize('kw, name', [
    (dict(size=0), 'size'), (dict(size=31), 'size'), (dict(size='64'), 'size'), (dict(size=True), 'size'),
    (dict(p_cooc=-0.01), 'p_cooc'), (dict(p_cooc=1.01), 'p_cooc'), (dict(p_cooc=float('nan')), 'p_cooc'),
    (dict(p_empty=2), 'p_empty'), (dict(p_caption_bg=-1), 'p_caption_bg'),
    (dict(classes=['boat', 'bicycle']), 'classes'), (dict(classes=[]), 'classes'),
    (dict(max_objects=0), 'max_objects'), (dict(seed=-1), 'seed'),
])
def test_invalid_arguments_name_the_argument(kw, name):
    with pytest.raises(ValueError, match=name): ToyWorld(**kw)


def test_negative_counts_and_indices():
    w = ToyWorld()
    with pytest.raises(ValueError, match='n must'): w.sample(-1)
    with pytest.raises(ValueError, match='start'): w.sample(2, start=-3)
    with pytest.raises(ValueError, match='i must'): w[-1]
    with pytest.raises(ValueError, match='i must'): w.empty(-1)
    assert w.sample(0) == []


def test_same_seed_same_samples_other_seed_other_samples():
    a, b, c = ToyWorld(seed=11), ToyWorld(seed=11), ToyWorld(seed=12)
    for i in (0, 5, 999):
        x, y = a[i], b[i]
        assert np.array_equal(x['image'], y['image']) and np.array_equal(x['mask'], y['mask'])
        assert x['caption'] == y['caption'] and x['background'] == y['background']
    # order of generation does not matter
    assert np.array_equal(ToyWorld(seed=11).sample(3, start=5)[0]['image'], a[5]['image'])
    assert not np.array_equal(a[0]['image'], c[0]['image'])
    assert sum(np.array_equal(a[i]['mask'], c[i]['mask']) for i in range(10)) < 10


@pytest.mark.parametrize('size', [32, 64, 224])
def test_sample_types_shapes_and_exact_labels(size):
    for x in ToyWorld(size=size, seed=3).sample(6):
        assert x['image'].shape == (size, size, 3) and x['image'].dtype == np.uint8
        assert x['mask'].shape == (size, size) and x['mask'].dtype == np.uint8
        assert x['labels'].dtype == np.float32 and x['labels'].shape == (len(TOY_CLASSES),)
        present = set(np.unique(x['mask']).tolist()) - {0}
        assert present == {int(k) + 1 for k in np.flatnonzero(x['labels'])}
        assert x['mask'].max() <= len(TOY_CLASSES)
        assert x['background'] in TOY_BACKGROUNDS and x['caption'].startswith('a photo of ')


def test_empty_images_and_scenes():
    w = ToyWorld(seed=4)
    e = w.empty(0)
    assert e['mask'].max() == 0 and e['labels'].sum() == 0 and e['caption'] == f"a photo of {e['background']}"
    assert all(x['mask'].max() == 0 for x in ToyWorld(p_empty=1.0).sample(4))
    s = w.scene(1, ['boat', 'boat'], 'sand')
    assert s['background'] == 'sand' and s['objects'] == ['boat'] and len(s['instances']) >= 1
    with pytest.raises(ValueError, match='background'): w.scene(0, ['boat'], 'snow')


def test_cooccurrence_follows_p_cooc():
    own = np.diag(cooccurrence_matrix(ToyWorld(p_cooc=1.0, max_objects=1, seed=2).sample(60)))
    assert np.allclose(own[own > 0], 1.0)
    assert set(COOCCURRENCE) == set(TOY_CLASSES) and set(COOCCURRENCE.values()) == set(TOY_BACKGROUNDS)


def test_caption_grammar():
    assert caption(['boat'], 'water') == 'a photo of a boat on water'
    assert caption(['cow', 'car']) == 'a photo of a cow and a car'
    with pytest.raises(ValueError): caption([], None)


def test_export_voc_layout(tmp_path):
    voc = export_voc(tmp_path, {'train': 4, 'val': 2}, size=48, seed=9, max_objects=2)
    assert voc == tmp_path / 'VOC2012'
    tr = (voc / 'ImageSets/Segmentation/train.txt').read_text().split()
    va = (voc / 'ImageSets/Segmentation/val.txt').read_text().split()
    assert len(tr) == 4 and len(va) == 2 and not set(tr) & set(va)
    w = ToyWorld(size=48, seed=9, max_objects=2)
    for k, i in enumerate(tr + va):
        assert Image.open(voc / 'JPEGImages' / f'{i}.jpg').size == (48, 48)
        png = Image.open(voc / 'SegmentationClass' / f'{i}.png')
        assert png.mode == 'P'
        assert np.array_equal(load_mask(voc / 'SegmentationClass' / f'{i}.png'), w[k]['mask'])
    assert (voc / 'class_names.txt').read_text().split() == ['background', *TOY_CLASSES]
    lab = json.loads((voc / 'image_labels.json').read_text())
    assert lab['classes'] == list(TOY_CLASSES) and set(lab['labels']) == set(tr + va)
    assert all(set(v) <= set(TOY_CLASSES) for v in lab['labels'].values())
    with pytest.raises(ValueError, match='n_per_split'): export_voc(tmp_path, {})
    with pytest.raises(ValueError, match='n_per_split'): export_voc(tmp_path, {'train': -2})
    with pytest.raises(ValueError, match='split name'): export_voc(tmp_path, {'../x': 1})
