# One image for every segbase process; docker-compose.yml picks the command.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock
COPY pyproject.toml README.md ./
COPY segbase ./segbase
COPY api ./api
COPY workers ./workers
COPY db ./db
COPY schemas ./schemas
COPY observability ./observability
COPY broker ./broker
RUN pip install --no-cache-dir --no-deps . && useradd --system --uid 10001 segbase
USER segbase
EXPOSE 54321
ENTRYPOINT ["segbase"]
CMD ["api"]
