"Edge cases of semples.data: the VOC reader on real and exported folders, label caching, COCO, and `semples doctor`."
import json, shutil, subprocess, sys
from pathlib import Path
import numpy as np
import pytest
import torch
from PIL import Image

from semples.core import VOC_CLASSES, load_mask, save_mask, voc_palette
from semples.data import (VOCSegDataset, COCOSegDataset, ToyWorldDataset, get_dataset, read_split,
                          train_transform, collate_items, find_voc_root, COCO_CLASSES)
from semples.doctor import check_voc, doctor_cli, convert_rgb_masks, rgb_to_index

ROOT = Path(__file__).resolve().parent.parent
VOC_MINI = ROOT / 'data' / 'voc_mini'
IDS = ['2011_000003', '2011_000006', '2011_000025']


@pytest.fixture
def voc(tmp_path):
    "A private copy of data/voc_mini as VOCdevkit/VOC2012, so tests may break it."
    shutil.copytree(VOC_MINI / 'VOC2012', tmp_path / 'VOCdevkit' / 'VOC2012', ignore=shutil.ignore_patterns('image_labels.json'))
    return tmp_path / 'VOCdevkit' / 'VOC2012'


def run_cli(*args):
    exe = shutil.which('semples') or 'semples'
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=120)


# ---------------------------------------------------------------- the reader on the three real VOC images
def test_reader_on_voc_mini_real_images():
    cache = VOC_MINI / 'VOC2012' / 'image_labels.json'
    before = cache.stat().st_mtime_ns if cache.exists() else None
    ds = VOCSegDataset(VOC_MINI, 'mini', cache_dir=False, label_source='mask')
    assert ds.ids == IDS and ds.classes == VOC_CLASSES[1:]
    sizes = []
    for i in range(len(ds)):
        x = ds[i]
        assert x['image'].dtype == torch.float32 and 0 <= float(x['image'].min()) and float(x['image'].max()) <= 1
        assert x['mask'].dtype == torch.long and x['mask'].shape == x['image'].shape[1:]
        assert 255 in x['mask'].unique().tolist(), 'the VOC void band must survive reading'
        sizes.append(tuple(x['image'].shape[1:]))
        # the labels are the classes of the official mask
        cls = {c for c in x['mask'].unique().tolist() if 0 < c < 255}
        assert set((x['labels'].nonzero().flatten() + 1).tolist()) == cls
    assert sizes == [(338, 500), (375, 500), (375, 500)]
    assert Image.open(VOC_MINI / 'VOC2012' / 'SegmentationClass' / f'{IDS[0]}.png').mode == 'P'
    after = cache.stat().st_mtime_ns if cache.exists() else None
    assert before == after, 'cache_dir=False must not write into the repository'


def test_reader_on_toyworld_export(tmp_path):
    from semples.toyworld import export_voc, ToyWorld, TOY_CLASSES
    export_voc(tmp_path, {'train': 5, 'val': 4}, size=64, seed=11)
    ds = VOCSegDataset(tmp_path, 'val')
    assert ds.classes == TOY_CLASSES and len(ds) == 4
    world = ToyWorld(size=64, seed=11)
    for k, i in enumerate(range(5, 9)):
        x, w = ds[k], world[i]
        assert x['id'] == w['id']
        assert torch.equal(x['mask'], torch.from_numpy(w['mask']).long())
        assert torch.equal(x['labels'], torch.from_numpy(w['labels']))
    assert set(ds.backgrounds) >= set(ds.ids)
    # the same slice in memory gives the same items
    mem = get_dataset('toyworld', split='val', n=4, start=5, size=64, seed=11)
    assert mem.ids == ds.ids and torch.equal(mem[3]['mask'], ds[3]['mask'])


def test_finds_voc_from_parent_folders(voc):
    for root in (voc, voc.parent, voc.parent.parent):
        assert find_voc_root(root) == voc
        assert len(VOCSegDataset(root, 'mini', cache_dir=False)) == 3


# ---------------------------------------------------------------- clear errors
def test_missing_voc_folder_says_expected_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match='expected layout'):
        VOCSegDataset(tmp_path / 'nowhere', 'train')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(FileNotFoundError, match='JPEGImages/<id>.jpg'):
        VOCSegDataset(tmp_path / 'empty', 'train')


def test_wrong_split_file(voc, tmp_path):
    with pytest.raises(FileNotFoundError, match="lists found: mini"):
        VOCSegDataset(voc, 'train_aug')
    main = tmp_path / 'aeroplane_train.txt'; main.write_text('2011_000003 -1\n2011_000006  1\n')
    with pytest.raises(ValueError, match='ImageSets/Main per-class list'):
        VOCSegDataset(voc, str(main))
    empty = tmp_path / 'empty.txt'; empty.write_text('\n\n')
    with pytest.raises(ValueError, match='holds no ids'):
        VOCSegDataset(voc, str(empty))
    with pytest.raises(FileNotFoundError, match='does not exist'):
        VOCSegDataset(voc, str(tmp_path / 'missing.txt'))
    # a list file given by path, in the 'image mask' format of some published train_aug lists
    lst = tmp_path / 'mine.txt'; lst.write_text(''.join(f'/JPEGImages/{i}.jpg /SegmentationClass/{i}.png\n' for i in IDS[:2]))
    ds = VOCSegDataset(voc, str(lst), cache_dir=False)
    assert ds.ids == IDS[:2] and ds.split == 'mine'


def test_unreadable_image(voc):
    (voc / 'JPEGImages' / f'{IDS[1]}.jpg').write_bytes(b'\xff\xd8\xff garbage')
    ds = VOCSegDataset(voc, 'mini', cache_dir=False)
    with pytest.raises(ValueError, match=f'cannot read image .*{IDS[1]}'):
        ds[1]


def test_missing_image_names_doctor(voc):
    (voc / 'JPEGImages' / f'{IDS[0]}.jpg').unlink()
    with pytest.raises(FileNotFoundError, match='semples doctor'):
        VOCSegDataset(voc, 'mini', cache_dir=False)[0]


def test_class_count_mismatch(voc, tmp_path):
    (voc / 'class_names.txt').write_text('background\nbottle\nperson\n')
    ds = VOCSegDataset(voc, 'mini', cache_dir=tmp_path)
    assert ds.classes == ('bottle', 'person')
    with pytest.raises(ValueError, match='class count mismatch'):
        ds.read_mask(IDS[2])
    # a label cache written for other classes is refused, not silently reused
    (voc / 'class_names.txt').unlink()
    VOCSegDataset(voc, 'mini', cache_dir=tmp_path).labels
    (voc / 'class_names.txt').write_text('background\nbottle\nperson\n')
    with pytest.raises(ValueError, match='class count mismatch'):
        VOCSegDataset(voc, 'mini', cache_dir=tmp_path).labels


def test_rgb_mask_is_refused_by_reader(voc):
    p = voc / 'SegmentationClass' / f'{IDS[0]}.png'
    Image.open(p).convert('RGB').save(p)
    with pytest.raises(ValueError, match='not a class-index mask'):
        VOCSegDataset(voc, 'mini', cache_dir=False)[0]


# ---------------------------------------------------------------- labels: XML first, cached as JSON
def test_labels_cached_as_json_xml_preferred(voc, tmp_path):
    (voc / 'Annotations').mkdir()
    (voc / 'Annotations' / f'{IDS[2]}.xml').write_text(
        '<annotation><object><name>bus</name><difficult>0</difficult></object></annotation>')
    cache = tmp_path / 'cache'
    ds = VOCSegDataset(voc, 'mini', cache_dir=cache)
    lab = {i: [ds.classes[j] for j in np.nonzero(ds.labels_of(i))[0]] for i in ds.ids}
    assert lab == {IDS[0]: ['bottle', 'person'], IDS[1]: ['chair', 'person', 'sofa'], IDS[2]: ['bus']}
    data = json.loads((cache / 'image_labels.json').read_text())        # plain JSON, no pickle
    assert data['classes'] == list(VOC_CLASSES[1:]) and data['labels'][IDS[2]] == ['bus']
    assert not (voc / 'image_labels.json').exists(), 'a given cache_dir keeps the data folder untouched'
    # the cache is used: a changed XML does not change the labels until the cache is removed
    (voc / 'Annotations' / f'{IDS[2]}.xml').write_text('<annotation><object><name>car</name></object></annotation>')
    assert VOCSegDataset(voc, 'mini', cache_dir=cache).labels_of(IDS[2]).nonzero()[0].tolist() == [5]
    assert VOCSegDataset(voc, 'mini', label_source='auto', cache_dir=False).labels_of(IDS[2]).nonzero()[0].tolist() == [6]
    with pytest.raises(FileNotFoundError, match="label_source='xml'"):
        VOCSegDataset(voc, 'mini', label_source='xml', cache_dir=False).labels
    # default cache location: next to the data
    VOCSegDataset(voc, 'mini').labels
    assert (voc / 'image_labels.json').is_file()


def test_train_aug_reads_segmentation_class_aug(voc):
    aug = voc / 'SegmentationClassAug'; aug.mkdir()
    for i in IDS:   # SBD-style: single-channel index PNGs
        Image.fromarray(load_mask(voc / 'SegmentationClass' / f'{i}.png'), mode='L').save(aug / f'{i}.png')
    (voc / 'ImageSets' / 'Segmentation' / 'train_aug.txt').write_text('\n'.join(IDS) + '\n')
    ds = VOCSegDataset(voc, 'train_aug', cache_dir=False)
    assert ds.mask_dir == 'SegmentationClassAug'
    assert torch.equal(ds[1]['mask'], VOCSegDataset(voc, 'mini', cache_dir=False)[1]['mask'])
    assert VOCSegDataset(voc, 'mini', cache_dir=False).mask_dir == 'SegmentationClass'


def test_split_without_masks(voc):
    (voc / 'ImageSets' / 'Segmentation' / 'test.txt').write_text(IDS[0] + '\n')
    shutil.rmtree(voc / 'SegmentationClass')
    (voc / 'Annotations').mkdir()
    (voc / 'Annotations' / f'{IDS[0]}.xml').write_text('<annotation><object><name>person</name></object></annotation>')
    x = VOCSegDataset(voc, 'test', cache_dir=False)[0]
    assert 'mask' not in x and x['labels'].nonzero().flatten().tolist() == [14]


# ---------------------------------------------------------------- transforms and batching
def test_train_transform_moves_mask_with_image():
    ds = VOCSegDataset(VOC_MINI, 'mini', transform=train_transform(96, scale=(0.2, 1.0)), cache_dir=False)
    plain = VOCSegDataset(VOC_MINI, 'mini', cache_dir=False)[2]
    torch.manual_seed(0)
    for _ in range(5):
        x = ds[2]
        assert x['image'].shape == (3, 96, 96) and x['mask'].shape == (96, 96)
        assert set(x['mask'].unique().tolist()) <= set(plain['mask'].unique().tolist())
    torch.manual_seed(3); a = ds[0]
    torch.manual_seed(3); b = ds[0]
    assert torch.equal(a['image'], b['image']) and torch.equal(a['mask'], b['mask'])
    # flip only (scale 1, full crop): the mask is the flipped or unflipped original resized, never shifted
    flip = VOCSegDataset(VOC_MINI, 'mini', transform=train_transform(64, scale=(1.0, 1.0), hflip=1.0), cache_dir=False)
    assert flip[0]['mask'].shape == (64, 64)


def test_collate_items():
    ds = ToyWorldDataset(n=4, size=64, seed=1)
    b = collate_items([ds[i] for i in range(4)])
    assert b['image'].shape == (4, 3, 64, 64) and b['mask'].shape == (4, 64, 64) and b['labels'].shape == (4, 6)
    loader = torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=collate_items)
    assert [len(x['id']) for x in loader] == [2, 2]
    mixed = collate_items([VOCSegDataset(VOC_MINI, 'mini', cache_dir=False)[i] for i in range(2)])
    assert isinstance(mixed['image'], list) and mixed['labels'].shape == (2, 20)


# ---------------------------------------------------------------- COCO in VOC format
def test_coco_91_id_masks(tmp_path):
    for d in ('images', 'masks', 'splits'): (tmp_path / d).mkdir()
    Image.new('RGB', (8, 6), (10, 20, 30)).save(tmp_path / 'images' / 'a.jpg')
    m = np.zeros((6, 8), np.uint8); m[0, :2] = 1; m[1, :2] = 90; m[2, :2] = 44; m[5] = 255
    save_mask(m, tmp_path / 'masks' / 'a.png')
    (tmp_path / 'splits' / 'val.txt').write_text('a\n')
    ds = COCOSegDataset(tmp_path, 'val', cache_dir=False)
    x = ds[0]
    names = [ds.classes[j] for j in x['labels'].nonzero().flatten()]
    assert names == ['person', 'bottle', 'toothbrush'] and len(ds.classes) == 80 and ds.classes == COCO_CLASSES
    assert sorted(x['mask'].unique().tolist()) == [0, 1, 40, 80, 255]
    m[3, 0] = 83                      # an unused COCO id
    save_mask(m, tmp_path / 'masks' / 'a.png')
    with pytest.raises(ValueError, match='unused COCO category ids'):
        COCOSegDataset(tmp_path, 'val', cache_dir=False)[0]
    m[3, 0] = 81                      # contiguous masks must stay within 0..80
    save_mask(m, tmp_path / 'masks' / 'a.png')
    with pytest.raises(ValueError, match='class count mismatch'):
        COCOSegDataset(tmp_path, 'val', mask_ids='contiguous', cache_dir=False)[0]
    with pytest.raises(FileNotFoundError, match="no list for split 'train'"):
        COCOSegDataset(tmp_path, 'train')


# ---------------------------------------------------------------- semples doctor
def test_doctor_good_folder_exits_0(voc):
    r = run_cli('doctor', voc.parent)
    assert r.returncode == 0, r.stdout + r.stderr
    assert 'OK: no problems found' in r.stdout and 'mini' in r.stdout
    rep = check_voc(voc)
    assert rep.ok and rep.counts['mini'] == dict(ids=3, images=3, masks=3, mask_dir='SegmentationClass')


def test_doctor_toyworld_export_exits_0(tmp_path):
    from semples.toyworld import export_voc
    export_voc(tmp_path, {'train': 3, 'val': 2}, size=64, seed=0)
    rep = check_voc(tmp_path)
    assert rep.ok, str(rep)
    assert rep.counts['train']['masks'] == 3 and not rep.notes    # ToyWorld splits are not compared with VOC sizes


def test_doctor_missing_jpegimages(voc):
    shutil.rmtree(voc / 'JPEGImages')
    r = run_cli('doctor', voc)
    assert r.returncode != 0
    assert 'JPEGImages is missing' in r.stdout and 'fix:' in r.stdout


def test_doctor_ids_listed_but_missing(voc, capsys):
    (voc / 'ImageSets' / 'Segmentation' / 'mini.txt').write_text('\n'.join(IDS + ['2012_004242']) + '\n')
    (voc / 'SegmentationClass' / f'{IDS[1]}.png').unlink()
    assert doctor_cli(str(voc), split='mini') == 1
    out = capsys.readouterr().out
    assert 'have no image in' in out and '2012_004242' in out
    assert 'have no mask' in out and IDS[1] in out


def test_doctor_rgb_masks_then_fixed(voc):
    for i in IDS[:2]:
        p = voc / 'SegmentationClass' / f'{i}.png'; Image.open(p).convert('RGB').save(p)
    r = run_cli('doctor', voc)
    assert r.returncode != 0
    assert 'RGB colour images, not class-index PNGs' in r.stdout and 'convert_rgb_masks' in r.stdout
    assert IDS[0] in r.stdout and IDS[1] in r.stdout
    converted = convert_rgb_masks(voc / 'SegmentationClass')
    assert [p.stem for p in converted] == IDS[:2]
    assert np.array_equal(load_mask(voc / 'SegmentationClass' / f'{IDS[0]}.png'),
                          load_mask(VOC_MINI / 'VOC2012' / 'SegmentationClass' / f'{IDS[0]}.png'))
    assert check_voc(voc).ok


def test_doctor_unknown_class_index_and_size(voc, capsys):
    p = voc / 'SegmentationClass' / f'{IDS[2]}.png'
    m = load_mask(p); m[5, 5] = 42; save_mask(m, p)
    save_mask(np.zeros((10, 10), np.uint8), voc / 'SegmentationClass' / f'{IDS[0]}.png')
    assert doctor_cli(str(voc)) == 1
    out = capsys.readouterr().out
    assert 'unknown class indices [42]' in out and IDS[2] in out
    assert 'differ in size from their images' in out


def test_doctor_val_leak_and_duplicates(voc):
    seg = voc / 'ImageSets' / 'Segmentation'
    (seg / 'train.txt').write_text('\n'.join(IDS + IDS[:1]) + '\n')
    (seg / 'val.txt').write_text(IDS[2] + '\n')
    rep = check_voc(voc)
    txt = str(rep)
    assert not rep.ok
    assert "ids of split 'val' are also in split 'train'" in txt and 'more than once' in txt
    assert any('standard PASCAL VOC 2012 train has 1,464' in n for n in rep.notes)


def test_doctor_no_voc_and_bad_split(tmp_path, voc, capsys):
    assert doctor_cli(str(tmp_path / 'nope')) == 1 and 'does not exist' in capsys.readouterr().out
    assert doctor_cli(str(voc), split='train_aug') == 1 and "no list for split 'train_aug'" in capsys.readouterr().out


def test_rgb_to_index_roundtrip():
    m = np.array([[0, 1, 15], [20, 255, 7]], np.uint8)
    assert np.array_equal(rgb_to_index(voc_palette()[m]), m)
    with pytest.raises(ValueError, match='not VOC palette colours'):
        rgb_to_index(np.full((1, 1, 3), 3, np.uint8))
