"Shared test helpers."
import os, subprocess, sys
import pytest
from semples.core import project_root

@pytest.fixture
def bench_script():
    "Run a script of bench/ in a fresh process with one CPU thread: `bench_script('name.py', *args)` -> CompletedProcess."
    def run(name, *args, timeout=600):
        env = {**os.environ, 'OMP_NUM_THREADS': '1'}
        return subprocess.run([sys.executable, str(project_root()/'bench'/name), *map(str, args)], capture_output=True, text=True,
                              env=env, timeout=timeout)
    return run
