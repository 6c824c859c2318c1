FROM python:3.12-slim
RUN pip install --no-cache-dir cython wheel
COPY . /src
RUN pip install --no-cache-dir /src && pip uninstall -y cython
USER 1000
ENTRYPOINT ["tini", "--", "app"]
