from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, EmailStr, Field, StringConstraints

from slotwise.text import Text
from slotwise.timezones import TimeZoneName
from slotwise.users.models import Role

# The seeds' words for the two roles anyone may register as.
REGISTRATION_ROLES: dict[str, Role] = {
    "provider": Role.PROVIDER,
    "tutor": Role.PROVIDER,
    "therapist": Role.PROVIDER,
    "doctor": Role.PROVIDER,
    "staff": Role.PROVIDER,
    "client": Role.CLIENT,
    "patient": Role.CLIENT,
    "customer": Role.CLIENT,
    "user": Role.CLIENT,
}


def _registration_role(value: object) -> Role:
    if not isinstance(value, str):
        raise ValueError("role must be a string")
    role = REGISTRATION_ROLES.get(value.strip().lower())
    if role is None:
        allowed = ", ".join(sorted(REGISTRATION_ROLES))
        raise ValueError(f"role must be one of: {allowed}")
    return role


def _lower(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


Email = Annotated[EmailStr, BeforeValidator(_lower), Field(max_length=320)]
FullName = Annotated[Text, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Password = Annotated[Text, Field(min_length=1, max_length=1024)]
# A password being set: the policy's length is part of the schema (commonness is not).
NewPassword = Annotated[Text, Field(min_length=8, max_length=128)]


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email
    password: NewPassword = Field(description="8 to 128 characters; common passwords are refused.")
    full_name: FullName
    role: Annotated[Role, BeforeValidator(_registration_role)] = Field(
        default=Role.CLIENT,
        description="provider or client, or an alias: tutor, therapist, doctor, staff "
        "(provider); patient, customer, user (client). Nobody registers as admin.",
    )
    timezone: TimeZoneName | None = None


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    full_name: str
    role: Role
    timezone: str | None
    is_active: bool
    is_blocked: bool
    created_at: datetime


class UserSelfUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    full_name: FullName | None = None
    timezone: TimeZoneName | None = None
    current_password: Password | None = Field(
        default=None, description="Required to set new_password."
    )
    new_password: NewPassword | None = None


def _not_admin(value: object) -> object:
    if isinstance(value, str) and value.strip().lower() == Role.ADMIN.value:
        raise ValueError("admin is granted only by `slotwise create-admin`, never through the API")
    return value


# The roles an admin may give through the API: never admin (README, docs/api.md).
AssignableRole = Annotated[Literal["provider", "client"], BeforeValidator(_not_admin)]


class UserAdminUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    full_name: FullName | None = None
    role: AssignableRole | None = Field(
        default=None,
        description="provider or client. Nobody is made admin through the API: only "
        "`slotwise create-admin` makes one. Every change is recorded (role-changes).",
    )
    is_active: bool | None = None
    is_blocked: bool | None = None


class RoleChangeRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    user_id: uuid.UUID
    changed_by_id: uuid.UUID | None = Field(description="The admin who made the change.")
    changed_at: datetime
    from_role: Role
    to_role: Role
