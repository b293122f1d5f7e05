"""Call flows as transport-free steps, their TwiML and SIP runners, and the prompt cache."""
