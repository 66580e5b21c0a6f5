"""Joining a Ray cluster: what `hnas search --executor ray` and `hnas profile --ray-address`
share. Ray is an optional extra, imported only here and only when asked for.

Security defaults are Ray's own and are kept: token authentication is left as the cluster has it
(a new local instance turns it on; a cluster started with ``RAY_AUTH_MODE=token`` requires the
token from every driver), and no dashboard is ever started by hnas.
"""

from __future__ import annotations

from typing import Any

from hnas_edge.errors import HnasError, MissingLibraryError

AUTH_HINT = (
    "if the cluster uses token authentication, set RAY_AUTH_MODE=token and give this machine "
    "the cluster's token (~/.ray/auth_token, RAY_AUTH_TOKEN_PATH or RAY_AUTH_TOKEN)"
)


def import_ray(purpose: str = "--executor ray") -> Any:
    try:
        import ray
    except ImportError:
        raise MissingLibraryError("ray", 'pip install "hnas-edge[ray]"', purpose) from None
    return ray


def connect(address: str, purpose: str = "--executor ray", **init_options: Any) -> bool:
    """Join the cluster at ``address`` (HOST:PORT; "auto": the one started on this machine;
    "local": a new local instance), unless this process is in one already. True when this call
    connected, so the caller disconnects (and a local instance stops)."""
    ray = import_ray(purpose)
    if ray.is_initialized():
        return False
    try:
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
            **init_options,
        )
    except (ConnectionError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise HnasError(
            f"cannot join the Ray cluster at {address}: {first[:200]}; check "
            f"the address (`ray status` on the head prints it) — {AUTH_HINT}"
        ) from None
    return True
