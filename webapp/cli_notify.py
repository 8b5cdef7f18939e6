"""``lotsen`` commands for notification sending (issue 6), and the hooks the timer worker
calls: ``sweep_once`` (``run-timers``) and ``start_sweeper`` (``worker``)."""

from __future__ import annotations

import logging
import sys
import threading

import click
from flask import Flask, current_app

from engine import timers
from engine.notifications import SweepStats, load_notification_settings, sweep

log = logging.getLogger("lotsen.notifications")


def sweep_once(app: Flask | None = None, batch: int = 100) -> SweepStats:
    """One notification pass with the app's database and the environment's mail settings."""
    target = app or current_app
    settings = load_notification_settings(target.extensions["lotsen"])
    return sweep(target.extensions["lotsen_db"], settings, timers.worker_id(), batch=batch)


def start_sweeper(app: Flask, stop: threading.Event, interval: float = 15.0) -> threading.Thread:
    """Run notification passes beside the timer worker until ``stop`` is set.

    The settings are read once here, so a wrong mail setting stops the worker at start-up
    instead of failing every pass. A pass that fails (database or mail server down) is
    logged and tried again after ``interval``; pending rows are never lost.
    """
    settings = load_notification_settings(app.extensions["lotsen"])
    factory = app.extensions["lotsen_db"]
    pause = max(0.1, min(float(interval), timers.MAX_INTERVAL))

    def loop() -> None:
        worker = timers.worker_id()
        while not stop.is_set():
            try:
                stats = sweep(factory, settings, worker)
            except Exception:
                log.exception("notification pass failed; retrying in %.0f s", pause)
            else:
                if stats.queued or stats.sent or stats.failed or stats.skipped:
                    log.info(
                        "notifications: queued=%d sent=%d skipped=%d failed=%d",
                        stats.queued,
                        stats.sent,
                        stats.skipped,
                        stats.failed,
                    )
            stop.wait(pause)

    thread = threading.Thread(target=loop, name="lotsen-notifications", daemon=True)
    thread.start()
    return thread


def describe(stats: SweepStats) -> str:
    """One line for the CLI."""
    return (
        f"notifications: queued {stats.queued}, sent {stats.sent}, "
        f"skipped {stats.skipped}, failed {stats.failed}"
    )


def register(group: click.Group) -> None:
    """Add this module's commands to the ``lotsen`` group."""

    @group.command("notify")
    @click.option("--once", is_flag=True, required=True, help="One pass, then exit (for cron).")
    @click.option("--batch", type=click.IntRange(1, 10000), default=100, show_default=True)
    def notify(once: bool, batch: int) -> None:
        """Queue due task notifications and send the pending ones (exit 1 if a send failed)."""
        stats = sweep_once(batch=batch)
        click.echo(describe(stats))
        if stats.failed:
            sys.exit(1)
