"""Google's OAuth 2.0 endpoints as the sandbox plays them: consent (with PKCE and
include_granted_scopes), the token endpoint (codes and refresh tokens), revocation."""
from __future__ import annotations

import hashlib
import json
import secrets
import time
from urllib.parse import urlencode

from flask import Blueprint, Response, jsonify, redirect, render_template, request

from sandbox.state import Grant, b64url, oauth_error, state, unb64url

bp = Blueprint("oauth", __name__)


def _client_or_error(client_id: str, redirect_uri: str | None):
    st = state()
    client = st.clients.get(client_id)
    if client is None:
        return None, "The OAuth client was not found."
    allowed = client.get("redirect_uris") or []
    if redirect_uri is not None and allowed and redirect_uri not in allowed:
        return None, f"redirect_uri_mismatch: {redirect_uri} is not registered"
    return client, None


@bp.get("/o/oauth2/auth")
def authorize():
    args = request.args
    client, problem = _client_or_error(args.get("client_id", ""), args.get("redirect_uri"))
    if problem:
        return render_template("error.html", problem=problem), 400
    if args.get("response_type") != "code":
        return render_template("error.html", problem="response_type must be code"), 400
    scopes = args.get("scope", "").split()
    return render_template("consent.html", args=args, scopes=scopes,
                           login_hint=args.get("login_hint") or "ada@example.com")


@bp.post("/o/oauth2/approve")
def approve():
    st = state()
    form = request.form
    redirect_uri = form.get("redirect_uri", "")
    client, problem = _client_or_error(form.get("client_id", ""), redirect_uri)
    if problem:
        return render_template("error.html", problem=problem), 400
    params = {"state": form.get("state", "")}
    if form.get("decision") != "allow":
        params["error"] = "access_denied"
        return redirect(f"{redirect_uri}?{urlencode(params)}")
    email_addr = form.get("email", "").strip().lower()
    if "@" not in email_addr:
        return render_template("error.html", problem="enter an email address"), 400
    granted = form.getlist("scope")
    with st.lock:
        if form.get("include_granted_scopes") == "true":
            for grant in st.grants.values():
                if (grant.email == email_addr and grant.client_id == form["client_id"]
                        and not grant.revoked):
                    granted = sorted(set(granted) | set(grant.scopes))
        code = secrets.token_urlsafe(24)
        st.codes[code] = {
            "client_id": form["client_id"], "redirect_uri": redirect_uri,
            "email": email_addr, "scopes": granted, "expires": time.time() + 600,
            "challenge": form.get("code_challenge") or None,
            "method": form.get("code_challenge_method") or "plain",
        }
    params.update(code=code, scope=" ".join(granted))
    return redirect(f"{redirect_uri}?{urlencode(params)}")


def _client_credentials():
    auth = request.authorization
    if auth and auth.type == "basic":
        return auth.username, auth.password
    return request.form.get("client_id", ""), request.form.get("client_secret", "")


def _new_access_token(grant: Grant) -> dict:
    st = state()
    token = "ya29.sandbox-" + secrets.token_urlsafe(32)
    st.access_tokens[token] = {"email": grant.email, "scopes": grant.scopes,
                               "expires": time.time() + st.access_token_seconds,
                               "refresh_token": grant.refresh_token}
    return {"access_token": token, "expires_in": st.access_token_seconds,
            "scope": " ".join(grant.scopes), "token_type": "Bearer"}


JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


@bp.post("/token")
def token():
    st = state()
    if request.form.get("grant_type") == JWT_BEARER:
        return _service_account_token(request.form.get("assertion", ""))
    client_id, secret = _client_credentials()
    client = st.clients.get(client_id)
    if client is None or not secrets.compare_digest(client["secret"], secret or ""):
        return oauth_error("invalid_client", "The OAuth client was not found.", 401)
    grant_type = request.form.get("grant_type")
    fault = st.take_fault("token")
    if fault is not None:
        if fault.delay:
            time.sleep(fault.delay)
        if fault.status >= 500:
            # Google's front end answers an outage with an HTML page, not OAuth JSON.
            return Response(f"<html><title>Error {fault.status}</title><body>"
                            f"{fault.message}</body></html>", status=fault.status,
                            mimetype="text/html")
        return oauth_error(fault.reason, fault.message, fault.status)
    with st.lock:
        if grant_type == "authorization_code":
            return _exchange_code(client_id)
        if grant_type == "refresh_token":
            grant = st.grants.get(request.form.get("refresh_token", ""))
            if grant is None or grant.revoked or grant.client_id != client_id:
                return oauth_error("invalid_grant", "Token has been expired or revoked.")
            return jsonify(_new_access_token(grant))
    return oauth_error("unsupported_grant_type", f"Invalid grant_type: {grant_type}")


def _service_account_token(assertion: str) -> Response:
    """A service account's access token for a JWT it signed with its key (RS256), as
    google-auth's service_account.Credentials asks for one."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding
    st = state()
    try:
        head, body, signature = assertion.split(".")
        claims = json.loads(unb64url(body))
        with st.lock:
            pem = st.service_accounts.get(str(claims.get("iss", "")))
        if pem is None:
            return oauth_error("invalid_grant", "Invalid JWT: unknown service account.")
        key = serialization.load_pem_public_key(pem.encode())
        key.verify(unb64url(signature), f"{head}.{body}".encode(), padding.PKCS1v15(),
                   hashes.SHA256())
    except (ValueError, InvalidSignature, TypeError):
        return oauth_error("invalid_grant", "Invalid JWT Signature.")
    # google-auth names Google's token endpoint as the audience, whatever token_uri is.
    audiences = (request.base_url, "https://oauth2.googleapis.com/token")
    if claims.get("aud") not in audiences or int(claims.get("exp", 0)) < time.time():
        return oauth_error("invalid_grant", "Invalid JWT: Token must be a short-lived "
                                            "token and in a reasonable timeframe.")
    token = "ya29.sandbox-sa-" + secrets.token_urlsafe(32)
    scopes = str(claims.get("scope", "")).split()
    with st.lock:
        st.access_tokens[token] = {"email": claims["iss"], "scopes": scopes,
                                   "expires": time.time() + st.access_token_seconds,
                                   "refresh_token": "", "service_account": True}
    return jsonify({"access_token": token, "expires_in": st.access_token_seconds,
                    "token_type": "Bearer"})


def _exchange_code(client_id: str) -> Response:
    st = state()
    code = st.codes.pop(request.form.get("code", ""), None)
    if code is None or code["expires"] < time.time() or code["client_id"] != client_id:
        return oauth_error("invalid_grant", "Malformed auth code.")
    if request.form.get("redirect_uri") != code["redirect_uri"]:
        return oauth_error("redirect_uri_mismatch", "Bad Request")
    if code["challenge"]:
        verifier = request.form.get("code_verifier", "")
        if not verifier:
            return oauth_error("invalid_request", "code_verifier or verifier is not set.")
        if code["method"] == "S256":
            computed = b64url(hashlib.sha256(verifier.encode()).digest())
        else:
            computed = verifier
        if not secrets.compare_digest(computed, code["challenge"]):
            return oauth_error("invalid_grant", "Invalid code verifier.")
    grant = Grant(email=code["email"], client_id=client_id, scopes=code["scopes"],
                  refresh_token="1//sandbox-" + secrets.token_urlsafe(32))
    st.grants[grant.refresh_token] = grant
    body = _new_access_token(grant)
    body["refresh_token"] = grant.refresh_token
    if "openid" in grant.scopes:
        body["id_token"] = _id_token(grant)
    return jsonify(body)


def _id_token(grant: Grant) -> str:
    """An ID token shaped like Google's (the sandbox does not sign it)."""
    now = int(time.time())
    claims = {"iss": "https://accounts.google.com", "aud": grant.client_id,
              "sub": hashlib.sha256(grant.email.encode()).hexdigest()[:21],
              "email": grant.email, "email_verified": True, "iat": now, "exp": now + 3600}
    header = {"alg": "RS256", "kid": "sandbox", "typ": "JWT"}
    return ".".join(b64url(json.dumps(part).encode()) for part in (header, claims)) \
        + ".sandbox-unsigned"


@bp.post("/revoke")
def revoke():
    st = state()
    token = request.values.get("token", "")
    with st.lock:
        grant = st.grants.get(token)
        if grant is None and token in st.access_tokens:
            grant = st.grants.get(st.access_tokens[token]["refresh_token"])
        if grant is None:
            return oauth_error("invalid_token", "Token expired or revoked")
        grant.revoked = True
        for key in [k for k, v in st.access_tokens.items()
                    if v["refresh_token"] == grant.refresh_token]:
            del st.access_tokens[key]
    return jsonify({})
