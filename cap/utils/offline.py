"""The offline switch: when on, nothing in ``cap`` touches the network.

A missing dataset or weight file then fails at once with
:class:`~cap.utils.errors.MissingResourceError`, naming the exact path expected and how
to obtain it, instead of starting a download.
"""

from __future__ import annotations

import os

#: Environment variable that turns offline mode on (``1``, ``true``, ``yes`` or ``on``).
OFFLINE_ENV = "CAP_OFFLINE"


def is_offline(flag: bool | None = None) -> bool:
    """Whether downloads are forbidden.

    ``flag`` is the config setting (``offline: true``). The environment variable
    ``CAP_OFFLINE`` can only switch offline mode *on*: a config that says
    ``offline: false`` does not let a run reach the network on a machine where
    ``CAP_OFFLINE=1`` was set on purpose.
    """
    from_env = os.environ.get(OFFLINE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}
    return bool(flag) or from_env
