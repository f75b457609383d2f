from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from slotwise.text import Text
from slotwise.users.schemas import Email, NewPassword, Password


class LoginJSON(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email
    password: Password


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105
    expires_in: int = Field(description="Seconds until the access token expires.")


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: Text = Field(min_length=1, max_length=4096)


class LogoutRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: Text | None = Field(default=None, max_length=4096)


class ForgotPasswordRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email


class ForgotPasswordAccepted(BaseModel):
    detail: str = "If an account exists for this email, a reset link is on its way."


class ResetPasswordRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: Text = Field(min_length=16, max_length=128)
    new_password: NewPassword
