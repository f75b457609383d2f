"""Dependencies that load a provider from the path and check who may act on it."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path

from slotwise.auth.deps import CurrentUser, OptionalUser
from slotwise.db import SessionDep
from slotwise.errors import Unauthorized
from slotwise.providers import service
from slotwise.providers.models import Provider
from slotwise.text import Text

ProviderRef = Annotated[
    Text,
    Path(
        min_length=1,
        max_length=64,
        description='"me", a public handle, a provider id, or the provider\'s user id.',
    ),
]


async def managed_provider(ref: ProviderRef, user: CurrentUser, session: SessionDep) -> Provider:
    """The provider in the path, if the caller owns it or is an admin (``me`` = your own)."""
    return await service.get_managed(session, user=user, ref=ref)


async def viewed_provider(ref: ProviderRef, user: OptionalUser, session: SessionDep) -> Provider:
    """The provider in the path, for reading: public, or your own with ``me``."""
    if ref == service.MY_PROFILE:
        if user is None:
            raise Unauthorized()
        return await service.get_own(session, user=user)
    return await service.get_public(session, ref=ref)


ManagedProvider = Annotated[Provider, Depends(managed_provider)]
ViewedProvider = Annotated[Provider, Depends(viewed_provider)]
