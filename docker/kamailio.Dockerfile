# The SIP edge: Kamailio from Debian as registrar and proxy, with the project's config.
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends kamailio \
    && rm -rf /var/lib/apt/lists/*
COPY docker/kamailio.cfg /etc/kamailio/kamailio.cfg
COPY docker/dispatcher.list /etc/kamailio/dispatcher.list
EXPOSE 5060/udp
CMD ["kamailio", "-f", "/etc/kamailio/kamailio.cfg", "-DD", "-E"]
