"""Every ORM model, imported in one place so that ``Base.metadata`` is complete."""

from slotwise.auth.models import RefreshToken, RevokedAccessToken
from slotwise.db import Base
from slotwise.users.models import User

__all__ = ["Base", "RefreshToken", "RevokedAccessToken", "User"]
