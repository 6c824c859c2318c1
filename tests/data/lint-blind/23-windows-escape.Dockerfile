# escape=`
FROM mcr.microsoft.com/windows/servercore:ltsc2022 AS download
SHELL ["powershell", "-Command", "$ErrorActionPreference = 'Stop'; $ProgressPreference = 'SilentlyContinue';"]
RUN Invoke-WebRequest -Uri https://example.com/tool.zip -OutFile C:\tool.zip ; `
    Expand-Archive C:\tool.zip -DestinationPath C:\tool
RUN New-Item -ItemType Directory -Path C:\data | Out-Null

FROM mcr.microsoft.com/windows/nanoserver:ltsc2022
COPY --from=download C:\tool C:\tool
USER ContainerUser
ENTRYPOINT ["C:\\tool\\tool.exe"]
