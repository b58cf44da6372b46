"""Authentication shared by IMAP, JMAP and SMTP: passwords, app passwords, OAuth tokens, SASL, JMAPACCESS.

Start with :class:`~janusmail.auth.authenticator.Authenticator`; the protocol adapters use
:class:`~janusmail.auth.sasl.SaslServer` (IMAP/SMTP) or ``Authenticator.http_authenticate`` (JMAP), and IMAP asks
``Authenticator.jmap_access_ok`` whether to advertise RFC 9698 JMAPACCESS.
"""

from .authenticator import Authenticator, AuthResult, LoginThrottle
from .passwords import make_credentials
from .policy import AuthPolicy
from .throttle import LoginRefused
from .tokens import ExternalIssuer, TokenError, TokenInfo, TokenService

__all__ = [
    "AuthPolicy",
    "AuthResult",
    "Authenticator",
    "ExternalIssuer",
    "LoginRefused",
    "LoginThrottle",
    "TokenError",
    "TokenInfo",
    "TokenService",
    "make_credentials",
]
