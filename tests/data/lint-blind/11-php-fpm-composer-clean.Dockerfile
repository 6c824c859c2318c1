FROM composer:2.7 AS vendor
WORKDIR /app
COPY composer.json composer.lock ./
RUN composer install --no-dev --no-scripts --no-autoloader --prefer-dist
COPY . .
RUN composer dump-autoload --optimize --classmap-authoritative

FROM php:8.3-fpm-alpine
COPY --from=mlocati/php-extension-installer:2 /usr/bin/install-php-extensions /usr/local/bin/
RUN apk add --no-cache tini \
    && install-php-extensions intl opcache pdo_mysql zip
WORKDIR /var/www/html
COPY --from=vendor --chown=www-data:www-data /app /var/www/html
USER www-data
ENTRYPOINT ["/sbin/tini", "--"]
CMD ["php-fpm"]
