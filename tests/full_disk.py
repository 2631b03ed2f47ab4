"""A file that meets a full disk: half of the first payload reaches it, then ENOSPC. Wrapped around the file
that ``pyrobust._io``'s atomic writer opens, by tests/test_io.py in process and by the sitecustomize hook of
tests/workflow/test_interruptions.py in the jobs of a workflow run (this file is copied beside the hook)."""

import errno
import os


class HalfWritten:
    """Stands for the open file ``file``: writes half of a payload, then raises ``OSError(ENOSPC)``."""

    def __init__(self, file):
        self.file = file

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.file.close()

    def fileno(self):
        return self.file.fileno()

    def flush(self):
        self.file.flush()

    def write(self, payload):
        self.file.write(payload[: len(payload) // 2])
        self.file.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
