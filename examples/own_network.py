"""Your own network in the sandbox: one AWS VPC made with boto3, routed to one external site.

Run it in a shell that has the export lines of `provision sandbox serve`; it prints the
smallest topology for what it made:

    python3 examples/own_network.py > own.yaml
"""

import boto3

ec2 = boto3.client("ec2")  # endpoint, keys and region: the exports (AWS_ENDPOINT_URL, ...)
vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
gateway = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
ec2.attach_internet_gateway(InternetGatewayId=gateway, VpcId=vpc)
subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.0.0/24")["Subnet"]["SubnetId"]
main_table = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]}])
table = main_table["RouteTables"][0]["RouteTableId"]
# the connector dials the VPN service: its subnet needs a way out
ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", GatewayId=gateway)
app = ec2.create_security_group(GroupName="app", Description="app servers", VpcId=vpc)["GroupId"]

print(f"""\
version: 1
networks:
  office-vpc:
    cloud: aws
    region: us-east-1
    vpc: {vpc}
    app_security_groups:
      - group: {app}
        ports: [tcp/443]
    connector:
      subnet: {subnet}
      profile: office.ovpn
  home:
    cloud: external
    subnets: [192.168.50.0/24]
""")
