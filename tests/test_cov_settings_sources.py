"""A project file that exists but cannot be read is a configuration error naming the file and the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from fluxlit.config.sources import load_settings
from fluxlit.errors import ConfigError


def test_an_unreadable_project_file_is_a_config_error(tmp_path: Path) -> None:
    # Reading /proc/self/mem from offset 0 fails with EIO for every user, root included.
    (tmp_path / "fluxlit.toml").symlink_to("/proc/self/mem")
    with pytest.raises(ConfigError, match=r"fluxlit\.toml cannot be read \(Input/output error\)"):
        load_settings(project_dir=tmp_path, env={})
