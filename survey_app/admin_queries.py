"""Every query on organiser accounts: who they are, their two-step login, their sessions.

Run in storage.py's sessions: functions take the session first, and the caller's
`storage.writer()` transaction commits what they change.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from .models import Admin


def admin_by_name(db: Session, username: str) -> Admin | None:
    """The organiser account with this (lower-case) username."""
    return db.scalars(select(Admin).filter_by(username=username)).one_or_none()


def admin_by_id(db: Session, admin_id: int) -> Admin | None:
    return db.get(Admin, admin_id)


def add_admin(db: Session, username: str, password_hash: str) -> Admin:
    admin = Admin(username=username, password_hash=password_hash, session_version=0)
    db.add(admin)
    db.flush()
    return admin


def set_admin_totp(db: Session, admin_id: int, secret: str | None) -> None:
    """Turn two-step login on (a new secret) or off (None) for one admin."""
    db.execute(update(Admin).where(Admin.id == admin_id).values(totp_secret=secret, totp_last_step=None))


def use_totp_step(db: Session, admin_id: int, step: int) -> bool:
    """Record a code's time step as used; False if it (or a later one) was used already."""
    used = db.execute(
        update(Admin)
        .where(Admin.id == admin_id, (Admin.totp_last_step.is_(None)) | (Admin.totp_last_step < step))
        .values(totp_last_step=step)
    )
    return used.rowcount == 1


def next_session_version(db: Session, admin_id: int) -> int:
    """Raise the admin's session version (ending every older session); the new value."""
    admin = db.scalars(select(Admin).filter_by(id=admin_id).with_for_update()).one()
    admin.session_version += 1
    return admin.session_version
