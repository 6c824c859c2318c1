FROM php:8.3-fpm-alpine
RUN apk add --no-cache --virtual .build-deps $PHPIZE_DEPS libzip-dev \
    && docker-php-ext-install zip \
    && apk del .build-deps \
    && apk add --no-cache libzip tini
COPY . /var/www/html/
USER www-data
ENTRYPOINT ["/sbin/tini", "--"]
CMD ["php-fpm"]
