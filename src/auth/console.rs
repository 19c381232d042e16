//! Console callers: a JWT from the admin console backend (HS256 and/or
//! Ed25519), then the member as keyward's own table knows it. Roles come from
//! that table, never from the token, so offboarding takes effect at once.

use super::MemberCaller;
use crate::config::Settings;
use crate::db::store;
use crate::db::Pool;
use crate::domain::{MemberStatus, TenantStatus};
use crate::error::{AppError, AppResult};
use jsonwebtoken::{decode, decode_header, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
pub struct ConsoleClaims {
    pub sub: String,
    pub tid: String,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
}

/// Seconds of clock skew tolerated between the console and keyward.
const LEEWAY_SECS: u64 = 30;

pub struct ConsoleVerifier {
    /// Longest lifetime (`exp - iat`) a token may claim.
    max_ttl_secs: i64,
    hs256: Option<DecodingKey>,
    ed25519: Option<DecodingKey>,
    issuer: String,
    audience: String,
}

impl ConsoleVerifier {
    pub fn new(settings: &Settings) -> Result<ConsoleVerifier, String> {
        let ed25519 = match &settings.console_jwt_public_key {
            Some(pem) => Some(DecodingKey::from_ed_pem(pem.as_bytes()).map_err(|e| e.to_string())?),
            None => None,
        };
        Ok(ConsoleVerifier {
            max_ttl_secs: settings.console_jwt_max_ttl.as_secs() as i64,
            hs256: settings.console_jwt_secret.as_ref().map(|s| DecodingKey::from_secret(s.expose().as_bytes())),
            ed25519,
            issuer: settings.console_jwt_issuer.clone(),
            audience: settings.console_jwt_audience.clone(),
        })
    }

    /// Signature, algorithm, time, issuer and audience; then the token's own
    /// time bounds: issued not in the future, lifetime at most the configured
    /// maximum (a stolen token with a ten-year `exp` stays useless).
    /// `Err` holds the audit reason.
    pub fn verify_token(&self, token: &str) -> Result<ConsoleClaims, &'static str> {
        let claims = self.verify_signed(token).ok_or("bad_token")?;
        let now = chrono::Utc::now().timestamp();
        if claims.iat > now + LEEWAY_SECS as i64 {
            return Err("token_issued_in_future");
        }
        if claims.exp - claims.iat > self.max_ttl_secs {
            return Err("token_lifetime_too_long");
        }
        Ok(claims)
    }

    fn verify_signed(&self, token: &str) -> Option<ConsoleClaims> {
        let header = decode_header(token).ok()?;
        let key = match header.alg {
            Algorithm::HS256 => self.hs256.as_ref()?,
            Algorithm::EdDSA => self.ed25519.as_ref()?,
            _ => return None,
        };
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        decode::<ConsoleClaims>(token, key, &validation).ok().map(|d| d.claims)
    }
}

/// A verified token's member, if it exists in that tenant and is active.
pub async fn authenticate(
    verifier: &ConsoleVerifier,
    pool: &Pool,
    token: Option<&str>,
) -> Result<MemberCaller, AppError> {
    let token = token.ok_or_else(|| AppError::console_refused("missing"))?;
    let claims = verifier.verify_token(token).map_err(AppError::console_refused)?;
    let (tid, sub) = (claims.tid.clone(), claims.sub.clone());
    let found = crate::db::read(pool, move |conn| {
        let member = store::find_member(conn, &tid, &sub)?;
        let tenant = store::find_tenant(conn, &tid)?;
        Ok(member.zip(tenant))
    })
    .await?;
    let (member, tenant) = found.ok_or_else(|| AppError::console_refused("unknown_member"))?;
    if tenant.status != TenantStatus::Active {
        return Err(AppError::console_refused("tenant_inactive"));
    }
    if member.status != MemberStatus::Active {
        return Err(AppError::console_refused("member_inactive"));
    }
    Ok(MemberCaller { tenant_id: member.tenant_id, member_id: member.id, email: member.email, role: member.role })
}

/// Mints a console token with the HS256 secret (CLI `console-token`, scripts, tests).
pub fn mint_token(settings: &Settings, tenant_id: &str, member_id: &str, ttl_secs: i64) -> AppResult<String> {
    let secret = settings
        .console_jwt_secret
        .as_ref()
        .ok_or_else(|| AppError::precondition("KEYWARD_CONSOLE_JWT_SECRET is not configured"))?;
    let now = chrono::Utc::now().timestamp();
    let claims = ConsoleClaims {
        sub: member_id.into(),
        tid: tenant_id.into(),
        iss: settings.console_jwt_issuer.clone(),
        aud: settings.console_jwt_audience.clone(),
        iat: now,
        exp: now + ttl_secs,
    };
    encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret.expose().as_bytes()))
        .map_err(|e| AppError::internal().caused_by(e))
}
