FROM centos:7
RUN yum install -y epel-release && yum install -y nginx
RUN useradd -u 1001 web
USER web
CMD ["nginx", "-g", "daemon off;"]
