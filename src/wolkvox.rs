//! The Wolkvox API's own words: its paths, and the reason phrases its answers carry. The
//! sender reads them and the simulator says them, so each is written here once.

/// Cases Insert, under the server's base URL.
pub const INSERT_PATH: &str = "/server/API/v2/cases/insert.php";
/// Token information (GET, `?operation=`): the token's daily quota.
pub const TOKEN_INFO_PATH: &str = "/server/API/v2/token/tokenInformation.php";

/// 403: the token is unknown or revoked.
pub const TOKEN_INVALID: &str = "PLEASE VALIDATE TOKEN";
/// 403: the token's daily quota is spent.
pub const TOKEN_LIMIT: &str = "TOKEN LIMIT EXCEEDED";
/// 401: no `Wolkvox-Token` header.
pub const TOKEN_MISSING: &str = "PLEASE ENTER THE WOLKVOX-TOKEN";
/// 403: a third request in flight on one token ("… PER TOKEN (2)").
pub const SIMULTANEOUS: &str = "EXCEEDS THE LIMIT OF SIMULTANEOUS REQUESTS";
/// 400: a path the server does not know.
pub const NO_SUCH_API: &str = "THE API YOU WANT TO CONSULT DOES NOT EXIST";
