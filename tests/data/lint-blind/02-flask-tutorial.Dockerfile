FROM python:3.11

WORKDIR /app
RUN apt-get update && apt-get install -y libpq-dev gcc
COPY requirements.txt requirements.txt
RUN pip install -r requirements.txt
RUN pip install gunicorn
COPY . .
EXPOSE 5000
CMD python app.py
