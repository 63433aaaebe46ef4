"Edge cases of semples.core that the notebook does not show."
import json, random
import numpy as np, pytest, torch
from semples.core import atomic_write, save_torch, save_json, load_json, seed_everything, RunDir, get_device

def test_atomic_write_exception_keeps_old_file_and_leaves_no_temp(tmp_path):
    p = tmp_path / 'ckpt.pt'
    save_torch({'step': 1}, p)
    with pytest.raises(Exception):  # a lambda cannot be pickled: torch.save fails mid-write
        save_torch({'step': 2, 'fn': lambda x: x}, p)
    assert torch.load(p)['step'] == 1
    assert [f.name for f in tmp_path.iterdir()] == ['ckpt.pt']

def test_atomic_write_text_interrupted(tmp_path):
    p = tmp_path / 'a.json'
    save_json({'v': 1}, p)
    with pytest.raises(RuntimeError):
        with atomic_write(p) as f:
            f.write('{"v": 2, "trunc')
            raise RuntimeError('killed')
    assert load_json(p) == {'v': 1}
    assert sorted(f.name for f in tmp_path.iterdir()) == ['a.json']

def test_load_json_names_bad_file(tmp_path):
    (tmp_path / 'bad.json').write_text('{nope')
    with pytest.raises(ValueError, match='bad.json'): load_json(tmp_path / 'bad.json')

def _stream(n=5):
    return [random.random() for _ in range(n)], np.random.rand(n).tolist(), torch.randn(n).tolist()

def test_same_seed_same_stream_other_seed_other_stream():
    seed_everything(123); a = _stream()
    seed_everything(123); b = _stream()
    seed_everything(124); c = _stream()
    assert a == b
    assert all(x != y for x, y in zip(a, c))

def test_env_json_has_promised_keys(tmp_path):
    run = RunDir(tmp_path / 'run', config={'seed': 0})
    env = json.loads((tmp_path / 'run' / 'env.json').read_text())
    for k in ['torch', 'torchvision', 'open_clip', 'cuda', 'cuda_available', 'cudnn', 'gpus', 'git_sha', 'git_dirty', 'python', 'time']:
        assert k in env, k
    assert env['torch'] == torch.__version__

def test_get_device_rejects_garbage():
    with pytest.raises(ValueError, match='unknown device'): get_device('gpu0')
