FROM maven:3.9-eclipse-temurin-21 AS build
WORKDIR /build
COPY . .
RUN mvn -B package -DskipTests
FROM eclipse-temurin:21-jre-alpine
RUN apk add --no-cache tini && adduser -D -u 10001 app
COPY --from=build /build/target/app.jar /app.jar
USER 10001
ENTRYPOINT ["tini", "--", "java", "-jar", "/app.jar"]
