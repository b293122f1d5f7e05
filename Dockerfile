# The application image: web, worker and the CLI (`burgernet ...`).
FROM python:3.11-slim-bookworm
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 BURGERNET_HOME=/app
WORKDIR /app
COPY pyproject.toml constraints.txt README.md LICENSE ./
COPY core core
COPY routing routing
COPY ivr ivr
COPY outbound outbound
COPY web web
COPY sounds sounds
COPY config config
RUN pip install -c constraints.txt . && useradd --system --home /app burgernet && mkdir -p var && chown burgernet var
USER burgernet
EXPOSE 8000
CMD ["burgernet", "web"]
