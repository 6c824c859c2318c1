FROM php:8.3-apache
RUN apt-get update && apt-get install -y libzip-dev \
    && docker-php-ext-install zip
RUN apt-get purge -y libzip-dev
COPY . /var/www/html/
