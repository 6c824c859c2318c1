FROM node:latest AS build
WORKDIR /src
COPY . .
RUN npm install
RUN npm run build

FROM node:20
WORKDIR /app
COPY --from=build /src/.next ./.next
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/package.json ./package.json
ENTRYPOINT npm start
