"""Stand-ins for the peers the product talks to, all on loopback: a Twilio-compatible carrier
(`twilio`), a Web Push service (`push`), a provider's media host (`media`), an SMTP server
(`smtp`), a map tile server (`tiles`), a DNS resolver (`dns`), and the real SIP peers, Kamailio
and SIPp, started as processes (`sip`); `loopback` runs the HTTP ones in a thread.

Shared by the tests, the benchmarks and the demo, and no part of the product: the wheel and
the image leave it out, no product package imports it, and it imports nothing of the product
(both held by import-linter), so a fake plays its peer from the peer's documentation, not
from our code. It needs the dev extra (aiosmtpd)."""
