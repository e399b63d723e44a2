"""A named pipe is read as `cat` reads it, whatever the order in which its writer and
nhipl come: nothing a writer wrote is lost, and nhipl never waits for a writer that has
already left."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this system")


def test_data_left_by_a_writer_that_has_gone_is_read(tmp_path):
    fifo = tmp_path / "p.nhipl"
    os.mkfifo(fifo)
    # Hold the pipe open for reading so that a writer can fill it and leave before nhipl
    # opens it; then nhipl must read what is there and stop, not wait for another writer.
    script = textwrap.dedent(
        f"""
        import os
        from nhipl.source import read_text
        holder = os.open({str(fifo)!r}, os.O_RDONLY | os.O_NONBLOCK)
        writer = os.open({str(fifo)!r}, os.O_WRONLY | os.O_NONBLOCK)
        os.write(writer, b'permit any agent to call "x" grant ttl 5m;\\n')
        os.close(writer)
        print(read_text({str(fifo)!r}), end="")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == 'permit any agent to call "x" grant ttl 5m;\n'
