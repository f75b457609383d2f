from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Form, Request, status
from pydantic import BaseModel, Field

from slotwise.apikeys.scopes import session_only
from slotwise.auth import attempts, reset, reset_page, service
from slotwise.auth.deps import CurrentClaims, CurrentUser
from slotwise.auth.schemas import (
    ForgotPasswordAccepted,
    ForgotPasswordRequest,
    LoginJSON,
    LogoutRequest,
    RefreshRequest,
    ResetPasswordRequest,
    TokenPair,
)
from slotwise.db import SessionDep
from slotwise.errors import responses
from slotwise.ratelimit import client_address
from slotwise.shared import NowDep, Shared, SharedDep, WallClock
from slotwise.text import Text
from slotwise.users.schemas import Password, UserCreate, UserRead

router = APIRouter()


async def _login(
    request: Request, shared: Shared, *, email: str, password: str, now: WallClock
) -> TokenPair:
    """The password checked outside any transaction (``service.authenticate``), then the
    session started in a transaction of its own."""
    client_ip = client_address(request)
    settings = shared.settings
    await shared.limiter.hit(settings.rate_limit_login_ip, "login-ip", client_ip)
    user = await attempts.authenticate(
        shared.db,
        shared.hasher,
        shared.limiter,
        settings,
        email=email,
        password=password,
        client_ip=client_ip,
    )
    async with shared.db.transaction(writes=True) as session:
        return await service.login(session, settings, user=user, now=now)


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserRead,
    responses=responses(409, 413, 415, 422, 429),
    summary="Create an account (provider or client)",
)
async def register(
    request: Request, data: UserCreate, shared: SharedDep, now: WallClock
) -> UserRead:
    limit = shared.settings.rate_limit_register_ip
    await shared.limiter.hit(limit, "register-ip", client_address(request))
    user = await service.register(shared.db, shared.hasher, data=data, now=now)
    return UserRead.model_validate(user)


_LOGIN_ERRORS = responses(401, 403, 422, 429)


class PasswordForm(BaseModel):
    """OAuth2's password grant form (RFC 6749 4.3): username is the account's email."""

    grant_type: Literal["password"] | None = None
    username: Text = Field(max_length=320)
    password: Password
    scope: Text = Field(default="", max_length=1024)


@router.post(
    "/login",
    response_model=TokenPair,
    responses=_LOGIN_ERRORS,
    summary="Log in with an OAuth2 password form (username = email)",
)
@router.post(
    "/jwt/login",
    response_model=TokenPair,
    responses=_LOGIN_ERRORS,
    summary="Log in with an OAuth2 password form (alias of /auth/login)",
    description="The same operation as `POST /api/v1/auth/login`, at another path.",
)
async def login_form(
    request: Request,
    form: Annotated[PasswordForm, Form()],
    shared: SharedDep,
    now: WallClock,
) -> TokenPair:
    return await _login(request, shared, email=form.username, password=form.password, now=now)


@router.post(
    "/login/json",
    response_model=TokenPair,
    responses=_LOGIN_ERRORS,
    summary="Log in with a JSON body",
)
async def login_json(
    request: Request, data: LoginJSON, shared: SharedDep, now: WallClock
) -> TokenPair:
    return await _login(request, shared, email=data.email, password=data.password, now=now)


@router.post(
    "/refresh",
    response_model=TokenPair,
    responses=responses(401, 422, 429),
    summary="Exchange a refresh token for a new pair (the old one is spent)",
)
async def refresh(
    request: Request, data: RefreshRequest, session: SessionDep, shared: SharedDep, now: WallClock
) -> TokenPair:
    settings = shared.settings
    await shared.limiter.hit(settings.rate_limit_refresh_ip, "refresh-ip", client_address(request))
    return await service.refresh(
        session, settings, shared.redis, refresh_token=data.refresh_token, now=now
    )


_LOGOUT_BODY = Body(description="Optionally, the refresh token to revoke too.")


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(401, 422),
    summary="End this session: its refresh tokens and every access token it was given",
)
@router.post(
    "/jwt/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(401, 422),
    summary="End this session (alias of /auth/logout)",
    description="The same operation as `POST /api/v1/auth/logout`, at another path.",
)
@session_only
async def logout(
    claims: CurrentClaims,
    session: SessionDep,
    shared: SharedDep,
    now: WallClock,
    data: Annotated[LogoutRequest | None, _LOGOUT_BODY] = None,
) -> None:
    token = data.refresh_token if data else None
    await service.logout(
        session, shared.settings, shared.redis, claims=claims, refresh_token=token, now=now
    )


@router.get("/me", response_model=UserRead, responses=responses(401), summary="The signed-in user")
async def me(user: CurrentUser) -> UserRead:
    return UserRead.model_validate(user)


@router.post(
    "/forgot-password",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ForgotPasswordAccepted,
    responses=responses(422, 429),
    summary="Mail a password reset link (the same answer whether or not the account exists)",
)
async def forgot_password(
    request: Request,
    data: ForgotPasswordRequest,
    session: SessionDep,
    shared: SharedDep,
    now: NowDep,
) -> ForgotPasswordAccepted:
    settings = shared.settings
    await shared.limiter.hit(settings.rate_limit_reset_ip, "reset-ip", client_address(request))
    await shared.limiter.hit(settings.rate_limit_reset_account, "reset-account", data.email)
    link = settings.password_reset_url or (
        settings.public_base_url.rstrip("/") + reset_page.PATH + "?token={token}"
    )
    await reset.request_reset(
        session,
        shared.password_reset_mail,
        email=data.email,
        link_template=link,
        valid_minutes=settings.password_reset_minutes,
        now=now,
    )
    return ForgotPasswordAccepted()


@router.post(
    "/reset-password",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(400, 422, 429),
    summary="Set a new password with a mailed token; every session of the account ends",
    description="Attempts per client address are limited as forgotten-password requests are "
    "(`SLOTWISE_RATE_LIMIT_RESET_IP`, counted apart): past it, 429 `rate_limited`.",
)
async def reset_password(
    data: ResetPasswordRequest,
    request: Request,
    shared: SharedDep,
    now: NowDep,
    wall: WallClock,
) -> None:
    limit = shared.settings.rate_limit_reset_ip
    await shared.limiter.hit(limit, "reset-submit-ip", client_address(request))
    await reset.reset_password(
        shared.db,
        shared.hasher,
        shared.settings,
        shared.redis,
        token=data.token,
        new_password=data.new_password,
        now=now,
        wall_now=wall,
    )
