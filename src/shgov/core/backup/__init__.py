"""灾备: backup sets of everything the platform holds (database, lake, files, keys, audit checkpoints),
consistent and SM3-checksummed, and restores into an empty folder and database — with point-in-time
recovery on PostgreSQL. ``service`` says how a set is made consistent; ``docs/operations.md`` the procedure."""

from shgov.core.backup.archive import BackupError
from shgov.core.backup.service import BackupResult, LakeViews, RestoreResult, backup, restore, verify_backup

__all__ = ["BackupError", "BackupResult", "LakeViews", "RestoreResult", "backup", "restore", "verify_backup"]
