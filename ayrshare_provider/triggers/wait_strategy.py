"""How a wait for a post's final status learns it: chosen once, when the task builds its trigger."""

from __future__ import annotations

from enum import Enum

from ayrshare_provider.version_compat import triggers_read_asset_state


class WaitStrategy(str, Enum):
    """
    How a :class:`~ayrshare_provider.triggers.post_status.PostStatusTrigger` learns its post's status.

    ``ALONE``: it reads its post each poll interval. ``BATCHED``: where the triggerer offers shared
    streams (Airflow 3.3+), the waits of one profile share one ``GET /api/history`` per interval, and
    read their post alone only when the listing cannot tell; elsewhere as ``ALONE``. ``PUSHED``: it
    checks the statuses Ayrshare pushed to Airflow's webhook receiver (no call to Ayrshare), and
    reads its post alone once the connection's ``webhook_grace`` passed with nothing pushed.
    """

    ALONE = "alone"
    BATCHED = "batched"
    PUSHED = "pushed"


def choose_wait_strategy(*, batch_wait: bool, pushes_expected: bool, own_profile_key: bool) -> WaitStrategy:
    """
    The one place a wait's strategy is decided.

    :param batch_wait: the task was asked to share listings with the other waits of its profile.
    :param pushes_expected: Ayrshare pushes this post's final status to Airflow: the connection has
        a webhook secret and the wait is for a retry the task itself sent (Ayrshare pushes the
        outcome of retried and scheduled posts only).
    :param own_profile_key: the task has a Profile Key of its own instead of its connection's; its
        profile may push to another URL, so such a wait does not wait on pushes.
    """
    # Pushes are read from the receiver's asset state store, which triggers can read on 3.3+.
    if pushes_expected and not own_profile_key and triggers_read_asset_state():
        return WaitStrategy.PUSHED
    return WaitStrategy.BATCHED if batch_wait else WaitStrategy.ALONE
